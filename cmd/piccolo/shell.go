package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/internal/sqltext"
)

const shellHelp = `
Shell reads SQL statements, each ended by a semicolon, runs them through
piccolo-go's engine and prints their rows as aligned tables, with psql's
habits: BEGIN, COMMIT, ROLLBACK, SAVEPOINT... typed as SQL run the engine's
transactions (with BEGIN's ISOLATION LEVEL and READ ONLY); the whole
session stays on one connection, so SET, temporary tables and prepared
statements last; \d and friends describe the database (type \? in the
shell). The prompt shows the transaction state: piccolo=> outside a
transaction, piccolo*> inside one, piccolo!> in a failed one (roll back, or
roll back to a savepoint), piccolo-> while a statement continues on the
next line.

With a terminal it offers line editing and history (~/.piccolo_history).
Ctrl-C during a statement cancels it (the session and its transaction,
now failed, stay); Ctrl-C at the prompt clears the line; Ctrl-D or \q
leave, rolling back an open transaction.

With -c or -f, or when standard input is not a terminal, it runs the
commands as a script: no prompts, errors on standard error; it goes on
after an error unless -v ON_ERROR_STOP=1 (or -S) is given, in which case it
stops there and exits with status 3. A failing -c exits with status 1.

DSN is a URL (postgres://user@host:5432/db), a key=value string
("host=... dbname=...") or a database name (the rest from PG* variables).
Without DSN, --dsn, DATABASE_URL or PG* variables it starts a throw-away
PostgreSQL cluster and removes it on exit.`

// exitScriptError is psql's status for a script stopped by ON_ERROR_STOP.
const exitScriptError = 3

// errStoppedOnError ends a script at its first error (ON_ERROR_STOP).
var errStoppedOnError = errors.New("stopped at the first error (ON_ERROR_STOP)")

// shellOptions are the shell's flags beyond the server's.
type shellOptions struct {
	scripts     []shellScript // -c and -f, in order; none: read standard input
	stopOnError bool          // ON_ERROR_STOP
}

// shellScript is a -c command or a -f file.
type shellScript struct {
	command string // -c
	file    string // -f; "-" is standard input
}

// runShell is `piccolo shell`.
func runShell(ctx context.Context, a *app, args []string) int {
	fs := flagSet("shell", "[--dsn DSN] [-c SQL]... [-f FILE]... [-v ON_ERROR_STOP=1 | -S] [--no-color] [DSN]",
		shellHelp+"\n\nMeta-commands:\n\n"+shellMetaHelp)
	dsn, noColor := serverFlags(fs)
	var o shellOptions
	fs.Func("c", "run `SQL` (statements, or one meta-command) and exit; may be repeated", func(v string) error {
		o.scripts = append(o.scripts, shellScript{command: v})
		return nil
	})
	fs.Func("f", "run the script in `FILE` (- for standard input) and exit; may be repeated", func(v string) error {
		o.scripts = append(o.scripts, shellScript{file: v})
		return nil
	})
	fs.Func("v", "set a variable: only `ON_ERROR_STOP=1` (or 0) is known", o.setVariable)
	fs.BoolVar(&o.stopOnError, "S", false, "stop scripts at the first error with exit status 3 (same as -v ON_ERROR_STOP=1)")
	if code, ok := a.parse(fs, args); !ok {
		return code
	}
	switch {
	case fs.NArg() > 1:
		return a.usageError(fs, "unexpected argument %q", fs.Arg(1))
	case fs.NArg() == 1 && *dsn != "":
		return a.usageError(fs, "the DSN is given twice: as --dsn and as %q", fs.Arg(0))
	case fs.NArg() == 1:
		*dsn = positionalDSN(fs.Arg(0))
	}
	err := func() (err error) {
		srv, err := a.openServer(ctx, *dsn)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, srv.close(ctx)) }()
		if fs.NArg() == 1 {
			srv.origin = "the DSN argument"
		}
		return a.shell(ctx, srv.dsn, srv.origin, a.newStyle(a.stdout, *noColor), o)
	}()
	switch {
	case errors.Is(err, errStoppedOnError) && ctx.Err() == nil:
		return exitScriptError
	case errors.Is(err, errCommandFailed) && ctx.Err() == nil:
		return exitFailure
	}
	return a.exitCode(ctx, "shell", err)
}

// setVariable is -v NAME=VALUE.
func (o *shellOptions) setVariable(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || !strings.EqualFold(name, "ON_ERROR_STOP") {
		return fmt.Errorf("want ON_ERROR_STOP=1 or ON_ERROR_STOP=0, got %q", v)
	}
	switch strings.ToLower(value) {
	case "1", "on", "true", "yes":
		o.stopOnError = true
	case "0", "off", "false", "no":
		o.stopOnError = false
	default:
		return fmt.Errorf("ON_ERROR_STOP wants 1 or 0, got %q", value)
	}
	return nil
}

// positionalDSN reads the DSN argument: a URL, a key=value string, or a
// database name.
func positionalDSN(arg string) string {
	if strings.Contains(arg, "://") || strings.Contains(arg, "=") {
		return arg
	}
	return "dbname='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(arg) + "'"
}

// errCommandFailed is a -c command that failed (psql exits 1).
var errCommandFailed = errors.New("a -c command failed")

// shell runs a session on the server at dsn, which origin describes: the
// -c and -f scripts of o, else an interactive session when stdin is a
// terminal, else stdin as a script.
func (a *app) shell(ctx context.Context, dsn, origin string, st style, o shellOptions) error {
	engine, conn, err := newShellEngine(dsn)
	if err != nil {
		return err
	}
	if err := engine.StartConnectionPool(ctx); err != nil {
		return fmt.Errorf("connect to %s: %w", origin, err)
	}
	defer engine.Close()
	s := &session{engine: engine, conn: conn, out: a.stdout, errOut: a.stderr, st: st, stopOnError: o.stopOnError}
	defer s.endTransaction(ctx)
	if len(o.scripts) > 0 {
		return s.runScripts(ctx, a.stdin, o.scripts)
	}
	f, ok := a.stdin.(*os.File)
	if !ok || !isTerminal(f) {
		return s.loop(ctx, newPlainReader(a.stdin))
	}
	r, err := newTermReader(f, a.stdout, a.stderr)
	if err != nil {
		return err
	}
	defer r.close()
	s.interactive = true
	if a.takeInterrupts != nil {
		var release func()
		s.interrupts, release = a.takeInterrupts()
		defer release()
	}
	fmt.Fprintf(a.stdout, "piccolo shell: PostgreSQL %s, %s (%s).\nType \\? for help, \\q or Ctrl-D to quit.\n",
		conn.serverVersion(), conn.describe(), origin)
	return s.loop(ctx, r)
}

// runScripts runs -c commands and -f files in order. A failing -c makes
// the exit status 1; ON_ERROR_STOP stops at the first error of any.
func (s *session) runScripts(ctx context.Context, stdin io.Reader, scripts []shellScript) error {
	commandFailed := false
	for _, sc := range scripts {
		s.failed = false
		var err error
		switch {
		case sc.file == "-":
			err = s.loop(ctx, newPlainReader(stdin))
		case sc.file != "":
			err = s.include(ctx, sc.file)
		default:
			s.runText(ctx, sc.command)
			commandFailed = commandFailed || s.failed
			err = s.stopped()
		}
		if err != nil {
			return err
		}
	}
	if commandFailed {
		return errCommandFailed
	}
	return nil
}

// session is the state of a shell: its connection, the transaction in
// progress, the display settings and the statement being typed.
type session struct {
	engine      *piccolo.PostgresEngine
	conn        *sessionConn
	out         io.Writer
	errOut      io.Writer
	st          style
	interactive bool
	stopOnError bool
	interrupts  <-chan struct{} // Ctrl-C during a statement; nil without a terminal

	txCtx    context.Context // carries tx; nil outside a transaction
	tx       *piccolo.PostgresTransaction
	mode     txMode // tx's, for AND CHAIN
	aborted  bool   // a statement failed in tx: only a rollback helps
	timing   bool
	expanded bool   // \x
	pending  string // the incomplete statement typed so far
	failed   bool   // an error was printed since the caller last cleared it
	depth    int    // \i nesting
}

// loop reads and runs lines until \q, the end of input or ctx's end. In a
// script with ON_ERROR_STOP, the first error ends it with errStoppedOnError.
func (s *session) loop(ctx context.Context, r lineReader) error {
	for {
		line, err := readLineContext(ctx, r, s.prompt())
		switch {
		case errors.Is(err, errInterrupted):
			s.pending = ""
			continue
		case errors.Is(err, io.EOF):
			if s.pending != "" {
				s.pending = ""
				s.fail(errors.New("the last statement has no closing semicolon; not run"))
			}
			return s.stopped()
		case err != nil:
			return err
		}
		s.failed = false
		if s.handleLine(ctx, line) {
			return nil
		}
		if err := s.stopped(); err != nil {
			return err
		}
		s.noticeReconnect()
	}
}

// stopped returns errStoppedOnError when ON_ERROR_STOP ends the script
// (scripts only: an interactive session goes on, and \i stops its file).
func (s *session) stopped() error {
	if s.stopOnError && s.failed && (!s.interactive || s.depth > 0) {
		return errStoppedOnError
	}
	return nil
}

// noticeReconnect says so when the pool had to open a new connection: the
// old one was lost, and the session state with it.
func (s *session) noticeReconnect() {
	if s.conn.connects.Load() > 1 {
		s.conn.connects.Store(1)
		s.warn("the connection to the server was lost and a new one opened: session state (SET, temporary tables, prepared statements) is gone")
	}
}

// prompt shows the transaction state and whether a statement continues.
func (s *session) prompt() string {
	switch {
	case s.pending != "":
		return "piccolo-> "
	case s.tx == nil:
		return "piccolo=> "
	case s.aborted:
		return "piccolo!> "
	}
	return "piccolo*> "
}

// psqlHelp is what psql answers to "help".
const psqlHelp = `You are using piccolo shell, the SQL shell of piccolo-go.
Type:  \? for help with shell commands
       terminate with semicolon to execute query
       \q to quit`

// handleLine runs a meta-command, or the statements the line completes; it
// returns true when the session should end.
func (s *session) handleLine(ctx context.Context, line string) (quit bool) {
	trimmed := strings.TrimSpace(line)
	if strings.HasPrefix(trimmed, `\`) {
		return s.meta(ctx, trimmed)
	}
	if s.pending == "" {
		switch word := strings.ToLower(strings.TrimSuffix(trimmed, ";")); {
		case word == "help": // no statement begins so
			fmt.Fprintln(s.out, psqlHelp)
			return false
		case s.interactive && (word == "quit" || word == "exit"):
			return true
		}
	}
	text := line
	if s.pending != "" {
		text = s.pending + "\n" + line
	}
	stmts, rest := sqltext.Split(text)
	s.pending = rest
	for _, sql := range stmts {
		s.timed(func() error { return s.statement(ctx, sql) })
	}
	return false
}

// runText runs text (a -c command): one meta-command, or statements whose
// last one needs no semicolon.
func (s *session) runText(ctx context.Context, text string) {
	if strings.HasPrefix(strings.TrimSpace(text), `\`) {
		s.meta(ctx, strings.TrimSpace(text))
		return
	}
	for _, sql := range sqltext.Statements(text) {
		s.timed(func() error { return s.statement(ctx, sql) })
	}
}

// include runs the script in file as if typed (\i and -f), stopping at
// its first error with ON_ERROR_STOP.
func (s *session) include(ctx context.Context, file string) error {
	const maxDepth = 16
	if s.depth >= maxDepth {
		return fmt.Errorf(`\i %s: scripts nested %d deep; does one include itself?`, file, maxDepth)
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	pending := s.pending
	s.pending = ""
	s.depth++
	defer func() { s.depth--; s.pending = pending }()
	return s.loop(ctx, newPlainReader(f))
}
