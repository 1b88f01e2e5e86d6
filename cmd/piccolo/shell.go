package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/internal/sqltext"
)

const shellHelp = `
Shell reads SQL statements, each ended by a semicolon, runs them through
piccolo-go's engine and prints their rows as aligned tables. Meta-commands
(type \? in the shell) begin, commit and roll back transactions, manage
savepoints and stream a query in batches. The prompt shows the transaction
state: piccolo=> outside a transaction, piccolo*> inside one, piccolo!> in a
failed one (roll back, or roll back to a savepoint), piccolo-> while a
statement continues on the next line.

With a terminal it offers line editing and history (~/.piccolo_history);
otherwise it reads standard input as a script, prints no prompts, and goes
on after errors, which it prints to standard error.

Without --dsn, DATABASE_URL or PG* variables it starts a throw-away
PostgreSQL cluster and removes it on exit.`

const shellMetaHelp = `Transactions
  \begin               begin a transaction (also: BEGIN;)
  \commit              commit it (also: COMMIT;)
  \rollback            roll it back (also: ROLLBACK;)
  \savepoint [NAME]    create a savepoint; without NAME one is generated
  \rollback_to NAME    roll back to savepoint NAME
  \release NAME        release savepoint NAME
Queries
  \batch N QUERY       stream QUERY through a cursor, N rows per batch
  \timing [on|off]     show how long each command takes
General
  \?                   this help
  \q                   quit (also: Ctrl-D); an open transaction is rolled back`

// runShell is `piccolo shell`.
func runShell(ctx context.Context, a *app, args []string) int {
	fs := flagSet("shell", "[--dsn DSN] [--no-color]", shellHelp+"\n\nMeta-commands:\n\n"+shellMetaHelp)
	dsn, noColor := serverFlags(fs)
	if code, ok := a.parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return a.usageError(fs, "unexpected argument %q", fs.Arg(0))
	}
	err := func() (err error) {
		srv, err := a.openServer(ctx, *dsn)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, srv.close(ctx)) }()
		return a.shell(ctx, srv.dsn, srv.origin, a.newStyle(a.stdout, *noColor))
	}()
	return a.exitCode(ctx, "shell", err)
}

// shell runs an interactive session (or a script, when stdin is not a
// terminal) on the server at dsn, which origin describes.
func (a *app) shell(ctx context.Context, dsn, origin string, st style) error {
	engine, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{DSN: dsn, MaxConns: 4})
	if err != nil {
		return err
	}
	if err := engine.StartConnectionPool(ctx); err != nil {
		return fmt.Errorf("connect to %s: %w", origin, err)
	}
	defer engine.Close()
	var r lineReader = newPlainReader(a.stdin)
	if f, ok := a.stdin.(*os.File); ok && isTerminal(f) {
		tr, err := newTermReader(f, a.stdout, a.stderr)
		if err != nil {
			return err
		}
		r = tr
		version, err := engine.Version(ctx)
		if err != nil {
			return fmt.Errorf("connect to %s: %w", origin, err)
		}
		fmt.Fprintf(a.stdout, "piccolo shell: PostgreSQL %s on %s. Type \\? for help, \\q to quit.\n", version, origin)
	}
	defer r.close()
	s := &session{engine: engine, out: a.stdout, errOut: a.stderr, st: st}
	return s.loop(ctx, r)
}

// session is the state of a shell: the transaction in progress and the
// statement being typed.
type session struct {
	engine *piccolo.PostgresEngine
	out    io.Writer
	errOut io.Writer
	st     style

	txCtx   context.Context // carries tx; nil outside a transaction
	tx      *piccolo.PostgresTransaction
	aborted bool // a statement failed in tx: only a rollback helps
	timing  bool
	pending string // the incomplete statement typed so far
}

// loop reads and runs lines until \q, the end of input or ctx's end, then
// rolls back a transaction left open.
func (s *session) loop(ctx context.Context, r lineReader) error {
	defer s.endTransaction()
	for {
		line, err := readLineContext(ctx, r, s.prompt())
		switch {
		case errors.Is(err, errInterrupted):
			s.pending = ""
			continue
		case errors.Is(err, io.EOF):
			if s.pending != "" {
				s.fail(errors.New("the last statement has no closing semicolon; not run"))
			}
			return nil
		case err != nil:
			return err
		}
		if s.handleLine(ctx, line) {
			return nil
		}
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

// handleLine runs a meta-command, or the statements the line completes; it
// returns true when the session should end.
func (s *session) handleLine(ctx context.Context, line string) (quit bool) {
	if trimmed := strings.TrimSpace(line); strings.HasPrefix(trimmed, `\`) {
		return s.meta(ctx, trimmed)
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

// timed runs fn, printing its error and, with \timing on, its duration.
func (s *session) timed(fn func() error) {
	start := time.Now()
	err := fn()
	if s.timing {
		fmt.Fprintf(s.out, "Time: %.3f ms\n", float64(time.Since(start).Microseconds())/1000)
	}
	if err != nil {
		s.fail(err)
	}
}

// fail prints err, PostgreSQL's errors the way psql does.
func (s *session) fail(err error) {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		fmt.Fprintln(s.errOut, s.st.red("ERROR: "+err.Error()))
		return
	}
	fmt.Fprintln(s.errOut, s.st.red(fmt.Sprintf("ERROR: %s (SQLSTATE %s)", pgErr.Message, pgErr.Code)))
	if pgErr.Detail != "" {
		fmt.Fprintln(s.errOut, "DETAIL: "+pgErr.Detail)
	}
	if pgErr.Hint != "" {
		fmt.Fprintln(s.errOut, "HINT: "+pgErr.Hint)
	}
}

// queryContext is the context statements run with: the transaction's, if any.
func (s *session) queryContext(ctx context.Context) context.Context {
	if s.txCtx != nil {
		return s.txCtx
	}
	return ctx
}

// statement runs one SQL statement and prints its rows or command tag.
// Transaction control typed as SQL (BEGIN, COMMIT...) goes to the engine's
// transactions, as the meta-commands do; a BEGIN with options is refused,
// and inside a transaction the engine refuses other SQL that would begin or
// end it (COMMIT AND CHAIN, PREPARE TRANSACTION). SAVEPOINT, RELEASE and
// ROLLBACK TO typed as SQL run in the transaction.
func (s *session) statement(ctx context.Context, sql string) error {
	switch txControl(sql) {
	case "begin":
		return s.begin(ctx)
	case "commit":
		return s.commit()
	case "rollback":
		return s.rollback()
	}
	if s.tx == nil && sqltext.Control(sql) == sqltext.TxStart {
		// Sent as SQL it would begin a transaction on one pooled connection
		// and hold none of the statements after it. (Inside a transaction
		// the engine refuses SQL that would begin or end it.)
		return errors.New(`not run: the shell tracks transactions begun by \begin or a plain BEGIN; (options such as ISOLATION LEVEL are not supported); use \begin`)
	}
	qctx := s.queryContext(ctx)
	q := piccolo.Querystring{SQL: sql}
	var err error
	if returnsRows(sql) {
		var res *resultTable
		if res, err = queryTable(qctx, s.engine, q); err == nil {
			writeTable(s.out, res, s.st)
		}
	} else {
		var tag pgconn.CommandTag
		if tag, err = s.engine.Exec(qctx, q); err == nil {
			fmt.Fprintln(s.out, tag.String())
		}
	}
	s.noteOutcome(err)
	return err
}

// noteOutcome tracks whether the transaction failed: a server error inside
// it aborts it, and only ROLLBACK TO SAVEPOINT succeeds in a failed one.
func (s *session) noteOutcome(err error) {
	if s.tx == nil {
		return
	}
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		s.aborted = false
	case errors.As(err, &pgErr):
		s.aborted = true
	}
}

// txControl names the transaction statement sql is ("begin", "commit",
// "rollback"), or returns "".
func txControl(sql string) string {
	words := strings.Fields(strings.ToLower(sql))
	if len(words) == 0 || len(words) > 2 {
		return ""
	}
	if len(words) == 2 && words[1] != "work" && words[1] != "transaction" {
		return ""
	}
	switch words[0] {
	case "begin":
		return "begin"
	case "start":
		if len(words) == 2 && words[1] == "transaction" {
			return "begin"
		}
	case "commit", "end":
		return "commit"
	case "rollback", "abort":
		return "rollback"
	}
	return ""
}

// returnsRows guesses whether sql returns rows, which decides between
// printing a table and printing the command tag: the engine's QueryFunc
// reports no tag and Exec no rows.
func returnsRows(sql string) bool {
	lower := strings.ToLower(sql)
	words := strings.Fields(strings.TrimLeft(lower, "( \t\r\n"))
	if len(words) == 0 {
		return false
	}
	switch words[0] {
	case "select", "with", "values", "table", "show", "explain", "fetch":
		return true
	}
	return strings.Contains(lower, "returning")
}

// meta runs a meta-command line (starting with a backslash); it returns
// true for \q.
func (s *session) meta(ctx context.Context, line string) (quit bool) {
	name, arg, _ := strings.Cut(line, " ")
	arg = strings.TrimSpace(arg)
	var err error
	switch name {
	case `\q`:
		return true
	case `\?`:
		fmt.Fprintln(s.out, shellMetaHelp)
	case `\timing`:
		err = s.setTiming(arg)
	case `\begin`:
		s.timed(func() error { return s.begin(ctx) })
	case `\commit`:
		s.timed(s.commit)
	case `\rollback`:
		s.timed(s.rollback)
	case `\savepoint`:
		s.timed(func() error { return s.savepoint(arg) })
	case `\rollback_to`:
		s.timed(func() error { return s.rollbackTo(arg) })
	case `\release`:
		s.timed(func() error { return s.release(arg) })
	case `\batch`:
		s.timed(func() error { return s.batch(ctx, arg) })
	default:
		err = fmt.Errorf(`unknown command %s: type \? for help`, name)
	}
	if err != nil {
		s.fail(err)
	}
	return false
}

// setTiming runs `\timing [on|off]`.
func (s *session) setTiming(arg string) error {
	switch arg {
	case "":
		s.timing = !s.timing
	case "on":
		s.timing = true
	case "off":
		s.timing = false
	default:
		return fmt.Errorf(`\timing: want on or off, got %q`, arg)
	}
	state := "off"
	if s.timing {
		state = "on"
	}
	fmt.Fprintf(s.out, "Timing is %s.\n", state)
	return nil
}

// errNoTransaction is returned by the meta-commands that need a transaction.
var errNoTransaction = errors.New(`no transaction in progress: \begin starts one`)

// begin starts a transaction and keeps the context that carries it.
func (s *session) begin(ctx context.Context) error {
	if s.tx != nil {
		return errors.New("a transaction is already in progress: \\commit or \\rollback it first")
	}
	txCtx, tx, err := s.engine.Begin(ctx)
	if err != nil {
		return err
	}
	s.txCtx, s.tx, s.aborted = txCtx, tx, false
	fmt.Fprintln(s.out, "BEGIN")
	return nil
}

// commit ends the transaction with Commit; a transaction that failed
// inside is rolled back, and Commit says so.
func (s *session) commit() error {
	if s.tx == nil {
		return errNoTransaction
	}
	err := s.tx.Commit(s.txCtx)
	s.txCtx, s.tx, s.aborted = nil, nil, false // committed or not, it is over
	if errors.Is(err, piccolo.ErrCommitRolledBack) {
		fmt.Fprintln(s.out, "ROLLBACK")
	} else if err == nil {
		fmt.Fprintln(s.out, "COMMIT")
	}
	return err
}

// rollback ends the transaction with Rollback.
func (s *session) rollback() error {
	if s.tx == nil {
		return errNoTransaction
	}
	err := s.tx.Rollback(s.txCtx)
	s.txCtx, s.tx, s.aborted = nil, nil, false
	if err == nil {
		fmt.Fprintln(s.out, "ROLLBACK")
	}
	return err
}

// endTransaction rolls back a transaction still open when the session
// ends, even after Ctrl-C.
func (s *session) endTransaction() {
	if s.tx == nil {
		return
	}
	fmt.Fprintln(s.errOut, "the session ended inside a transaction: rolling it back")
	err := s.tx.Rollback(context.WithoutCancel(s.txCtx))
	s.txCtx, s.tx = nil, nil
	if err != nil {
		s.fail(err)
	}
}

// savepoint runs `\savepoint [name]`.
func (s *session) savepoint(name string) error {
	if s.tx == nil {
		return errNoTransaction
	}
	sp, err := s.tx.Savepoint(s.txCtx, name)
	if err != nil {
		return err
	}
	fmt.Fprintln(s.out, "SAVEPOINT "+sp.Name())
	return nil
}

// rollbackTo runs `\rollback_to name`; success un-fails the transaction.
func (s *session) rollbackTo(name string) error {
	if s.tx == nil {
		return errNoTransaction
	}
	if name == "" {
		return errors.New(`\rollback_to needs a savepoint name`)
	}
	err := s.tx.RollbackTo(s.txCtx, name)
	s.noteOutcome(err)
	if err == nil {
		fmt.Fprintln(s.out, "ROLLBACK TO SAVEPOINT "+name)
	}
	return err
}

// release runs `\release name`.
func (s *session) release(name string) error {
	if s.tx == nil {
		return errNoTransaction
	}
	if name == "" {
		return errors.New(`\release needs a savepoint name`)
	}
	quoted, err := piccolo.QuoteIdentifier(name)
	if err != nil {
		return err
	}
	_, err = s.engine.Exec(s.txCtx, piccolo.Querystring{SQL: "RELEASE SAVEPOINT " + quoted})
	s.noteOutcome(err)
	if err == nil {
		fmt.Fprintln(s.out, "RELEASE SAVEPOINT "+name)
	}
	return err
}

// batch runs `\batch N QUERY`: QUERY through a cursor, printing each batch
// of at most N rows as it arrives.
func (s *session) batch(ctx context.Context, arg string) error {
	size, query, _ := strings.Cut(arg, " ")
	n, err := strconv.Atoi(size)
	query = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(query), ";"))
	if err != nil || n < 1 || query == "" {
		return errors.New(`usage: \batch N QUERY, with N at least 1`)
	}
	b, err := s.engine.Batch(s.queryContext(ctx), piccolo.Raw(query), piccolo.BatchSize(n))
	s.noteOutcome(err)
	if err != nil {
		return err
	}
	qctx := s.queryContext(ctx)
	defer b.Close(qctx)
	total, batches := 0, 0
	for {
		res := &resultTable{}
		got, err := b.NextFunc(qctx, res.scan)
		s.noteOutcome(err)
		if err != nil {
			return err
		}
		if got == 0 {
			break
		}
		batches++
		total += got
		fmt.Fprintln(s.out, s.st.dim(fmt.Sprintf("-- batch %d", batches)))
		writeTable(s.out, res, s.st)
		if got < n {
			break
		}
	}
	fmt.Fprintf(s.out, "(%d rows in %d batches of up to %d)\n", total, batches, n)
	return nil
}
