package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"

	"github.com/piccolo-go/piccolo"
)

// defaultStreamRows is how many generated rows the batch step streams.
const defaultStreamRows = 1_000_000

const playgroundHelp = `
Playground runs a tour of piccolo-go's engine on Piccolo's playground schema
(managers, bands, venues, concerts, tickets), declared as Go structs with
the query layer's typed tables: it creates the schema atomically, fills it
with typed inserts, commits and rolls back transactions, nests a block as
a savepoint, uses explicit savepoints, lets Retry win a real serialization
conflict, streams generated rows through a batch cursor, shows the engine's
query log and runs a race-safe get-or-create from 50 goroutines. Each step
prints the SQL that ran and its results, and checks its own outcome: the
command exits 0 only when every step behaved as expected.

Without --dsn, DATABASE_URL or PG* variables it starts a throw-away
PostgreSQL cluster and removes it on exit (Ctrl-C included). On a server you
name it works only in schema piccolo_playground, which it creates (dropping
a leftover of an earlier run) and drops at the end.

When standard input is a terminal, the tour offers a SQL shell on the
playground's tables before cleaning up.`

// playgroundFlags are the playground's options.
type playgroundFlags struct {
	dsn     string
	rows    int
	noColor bool
}

// runPlayground is `piccolo playground`.
func runPlayground(ctx context.Context, a *app, args []string) int {
	fs := flagSet("playground", "[--dsn DSN] [--rows N] [--no-color] [run]", playgroundHelp)
	dsn, noColor := serverFlags(fs)
	rows := fs.Int("rows", defaultStreamRows, "how many generated rows the batch step streams")
	if code, ok := a.parse(fs, args); !ok {
		return code
	}
	f := playgroundFlags{dsn: *dsn, rows: *rows, noColor: *noColor}
	// "run" is accepted for Piccolo users: `piccolo playground run`.
	if fs.NArg() > 1 || (fs.NArg() == 1 && fs.Arg(0) != "run") {
		return a.usageError(fs, "unexpected argument %q", fs.Arg(fs.NArg()-1))
	}
	if f.rows < 1 || f.rows > math.MaxInt32 {
		return a.usageError(fs, "--rows must be between 1 and %d, got %d", math.MaxInt32, f.rows)
	}
	return a.exitCode(ctx, "playground", a.playground(ctx, f))
}

// playground opens the server, runs the tour, offers the shell when
// interactive, and cleans up whatever happens.
func (a *app) playground(ctx context.Context, f playgroundFlags) (err error) {
	srv, err := a.openServer(ctx, f.dsn)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, srv.close(ctx)) }()
	dsn, err := withSearchPath(srv.dsn, playgroundSchema)
	if err != nil {
		return err
	}
	st := a.newStyle(a.stdout, f.noColor)
	printer := newSQLPrinter(ctx, a.stdout, st)
	engine, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{
		DSN:        dsn,
		LogQueries: true,
		Logger:     slog.New(printer),
		MaxConns:   8,
	})
	if err != nil {
		return err
	}
	if err := engine.StartConnectionPool(ctx); err != nil {
		return fmt.Errorf("connect to %s: %w", srv.origin, err)
	}
	defer engine.Close()
	version, err := engine.Version(ctx)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", srv.origin, err)
	}
	printer.discard() // SHOW server_version_num: not part of the tour
	fmt.Fprintf(a.stdout, "%s: PostgreSQL %s on %s\n", st.bold("piccolo playground"), version, srv.origin)
	fmt.Fprintf(a.stdout, "Everything happens in schema %s, which the tour creates and drops.\n", playgroundSchema)

	t := &tour{
		out: a.stdout, st: st, sql: printer, engine: engine, dsn: dsn,
		rows: f.rows, progress: isTerminal(a.stdout),
	}
	steps := tourSteps()
	defer func() {
		if !t.dropped {
			err = errors.Join(err, t.dropSchema(ctx))
		}
	}()
	if err := t.run(ctx, steps[:len(steps)-1], 0, len(steps)); err != nil {
		return err
	}
	if isTerminal(a.stdin) {
		if err := a.offerShell(ctx, dsn, st); err != nil {
			return err
		}
	}
	if err := t.run(ctx, steps[len(steps)-1:], len(steps)-1, len(steps)); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "\n%s\n", st.green(fmt.Sprintf("All %d steps behaved as expected.", len(steps))))
	return nil
}

// offerShell asks whether to open the shell on the playground's tables and
// runs it if the answer is yes (the default).
func (a *app) offerShell(ctx context.Context, dsn string, st style) error {
	fmt.Fprintf(a.stdout, "\nOpen a SQL shell on the playground's tables before they are dropped? [Y/n] ")
	answer, ok := readAnswer(a.stdin)
	if !ok || (answer != "" && answer != "y" && answer != "yes") {
		fmt.Fprintln(a.stdout)
		return nil
	}
	return a.shell(ctx, dsn, "the playground ("+playgroundSchema+")", st, shellOptions{})
}

// readAnswer reads one line from r a byte at a time, so that nothing after
// it is consumed, and returns it trimmed and lower-cased; ok is false when
// r ended (or failed) first.
func readAnswer(r io.Reader) (answer string, ok bool) {
	var line []byte
	b := make([]byte, 1)
	for {
		n, err := r.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				return strings.ToLower(strings.TrimSpace(string(line))), true
			}
			line = append(line, b[0])
		}
		if err != nil {
			return "", false
		}
	}
}
