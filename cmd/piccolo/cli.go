package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

// Exit codes, following the conventions of Go tools and shells.
const (
	exitOK          = 0
	exitFailure     = 1   // a step of the tour misbehaved, or the server failed
	exitUsage       = 2   // bad flags or arguments
	exitInterrupted = 130 // SIGINT or SIGTERM: 128 + SIGINT, as shells report it
)

// app is one invocation of the command: its streams and environment. It is
// passed down instead of reading os.Stdin or os.Getenv, so that tests can
// run the command in-process.
type app struct {
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
	lookupEnv func(key string) (string, bool)
	// takeInterrupts, when set, takes SIGINT from the command's
	// cancellation until release is called: the interactive shell cancels
	// the running statement on Ctrl-C instead of ending.
	takeInterrupts func() (interrupts <-chan struct{}, release func())
}

// command is a subcommand of piccolo.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, a *app, args []string) int
}

// commands are piccolo's subcommands, in the order usage lists them.
func commands() []command {
	return []command{
		{"playground", "run the tour of the engine on a playground schema", runPlayground},
		{"shell", "an interactive SQL shell on the engine", runShell},
		{"version", "print piccolo's version", runVersion},
	}
}

// run is the whole command minus the process: it parses args (without the
// program name), runs the subcommand and returns the exit code. Errors go
// to stderr.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, lookupEnv: os.LookupEnv}
	return a.run(ctx, args)
}

// run runs the command for a.
func (a *app) run(ctx context.Context, args []string) int {
	stdout, stderr := a.stdout, a.stderr
	if len(args) == 0 {
		a.usage(stderr)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help":
		a.usage(stdout)
		return exitOK
	case "-V", "-version", "--version":
		return runVersion(ctx, a, rest)
	case "help":
		return a.help(ctx, rest)
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, a, rest)
		}
	}
	fmt.Fprintf(stderr, "piccolo: unknown command %q\n\n", name)
	a.usage(stderr)
	return exitUsage
}

// help runs `piccolo help [command]`.
func (a *app) help(ctx context.Context, args []string) int {
	if len(args) == 0 {
		a.usage(a.stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, a, []string{"--help"})
		}
	}
	fmt.Fprintf(a.stderr, "piccolo help: unknown command %q\n", args[0])
	return exitUsage
}

// usage prints the top-level help to w.
func (a *app) usage(w io.Writer) {
	fmt.Fprint(w, `piccolo: piccolo-go's command line.

Usage:

	piccolo <command> [flags] [arguments]
	piccolo --version

Commands:

`)
	for _, c := range commands() {
		fmt.Fprintf(w, "\t%-11s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Without --dsn, DATABASE_URL or PG* variables (PGHOST, PGPORT, PGDATABASE,
PGUSER...), playground and shell start a throw-away PostgreSQL cluster from
the machine's PostgreSQL programs and remove it when they exit.

Run "piccolo help <command>" for a command's flags.
`)
}

// flagSet returns a FlagSet for a subcommand whose usage prints synopsis and
// description followed by the flags.
func flagSet(name, synopsis, description string) *flag.FlagSet {
	fs := flag.NewFlagSet("piccolo "+name, flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: piccolo %s %s\n\n%s\n", name, synopsis, strings.TrimSpace(description))
		var hasFlags bool
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprint(w, "\nFlags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parse parses a subcommand's flags. When ok is false the command must
// return code at once: help was asked for (printed to stdout, exit 0) or
// the flags are wrong (reported to stderr, exit 2).
func (a *app) parse(fs *flag.FlagSet, args []string) (code int, ok bool) {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(a.stdout)
		fs.Usage()
		return exitOK, false
	case err != nil:
		fmt.Fprintf(a.stderr, "%s: %v\n", fs.Name(), err)
		fs.SetOutput(a.stderr)
		fs.Usage()
		return exitUsage, false
	}
	fs.SetOutput(a.stderr)
	return exitOK, true
}

// serverFlags adds the flags every command that talks to a server has.
func serverFlags(fs *flag.FlagSet) (dsn *string, noColor *bool) {
	dsn = fs.String("dsn", "", "PostgreSQL `URL or key=value string` to use instead of a throw-away cluster")
	noColor = fs.Bool("no-color", false, "do not colour the output (also: NO_COLOR=1)")
	return dsn, noColor
}

// exitCode reports how a command that talks to a server ended: errors go
// to stderr, and an interruption (Ctrl-C, SIGTERM) gets its own code.
func (a *app) exitCode(ctx context.Context, cmd string, err error) int {
	switch {
	case err == nil:
		return exitOK
	case ctx.Err() != nil:
		fmt.Fprintf(a.stderr, "piccolo %s: interrupted (%v); cleaned up\n", cmd, context.Cause(ctx))
		return exitInterrupted
	default:
		fmt.Fprintf(a.stderr, "piccolo %s: %v\n", cmd, err)
		return exitFailure
	}
}

// usageError reports a wrong argument of a subcommand and returns exit 2.
func (a *app) usageError(fs *flag.FlagSet, format string, args ...any) int {
	fmt.Fprintf(a.stderr, "%s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.Usage()
	return exitUsage
}

// runVersion is `piccolo version`.
func runVersion(_ context.Context, a *app, args []string) int {
	fs := flagSet("version", "", "Version prints the version of piccolo and of the Go toolchain that built it.")
	if code, ok := a.parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return a.usageError(fs, "unexpected argument %q", fs.Arg(0))
	}
	fmt.Fprintln(a.stdout, versionString())
	return exitOK
}

// versionString is the module version piccolo was built from ("(devel)"
// for a build inside the repository) and the Go version.
func versionString() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "piccolo (unknown version)"
	}
	s := "piccolo " + info.Main.Version
	for _, kv := range info.Settings {
		if kv.Key == "vcs.revision" && len(kv.Value) >= 12 {
			s += " (" + kv.Value[:12] + ")"
		}
	}
	return s + " " + info.GoVersion
}
