// Command piccolo is piccolo-go's command line: a guided tour of the engine
// on a PostgreSQL server of its own, and an interactive SQL shell.
//
// Usage:
//
//	piccolo playground [--dsn DSN] [--rows N] [--no-color]
//	piccolo shell [--dsn DSN] [-c SQL] [-f FILE] [-v ON_ERROR_STOP=1 | -S] [--no-color] [DSN]
//	piccolo version (or piccolo --version)
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
// cancels the context, so that the throw-away cluster is removed, except
// that the interactive shell takes SIGINT (Ctrl-C) to cancel a statement.
func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := &signalRouter{cancel: cancel}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		for sig := range ch {
			if sigs.deliver(sig) {
				// After the first signal that ends the command, cleanup runs;
				// a second one gets the default behaviour (exit at once). A
				// throw-away cluster is then still removed by its watchdog.
				signal.Reset(os.Interrupt, syscall.SIGTERM)
				return
			}
		}
	}()
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, lookupEnv: os.LookupEnv, takeInterrupts: sigs.take}
	code := a.run(ctx, os.Args[1:])
	signal.Stop(ch)
	os.Exit(code)
}
