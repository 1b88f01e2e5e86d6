// Command piccolo is piccolo-go's command line: a guided tour of the engine
// on a PostgreSQL server of its own, and an interactive SQL shell.
//
// Usage:
//
//	piccolo playground [--dsn DSN] [--rows N] [--no-color]
//	piccolo shell [--dsn DSN] [--no-color]
//	piccolo version
//
// Without --dsn, DATABASE_URL or PG* variables, playground and shell start a
// throw-away PostgreSQL cluster from the machine's PostgreSQL programs and
// remove it when they exit, Ctrl-C included. Run `piccolo help COMMAND` for
// the flags of each command.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// main runs the command with signal handling: the first SIGINT or SIGTERM
// cancels the context, so that the throw-away cluster is removed.
func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal the context is cancelled and cleanup runs;
		// a second signal gets the default behaviour (exit at once). A
		// throw-away cluster is then still removed by its watchdog.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
