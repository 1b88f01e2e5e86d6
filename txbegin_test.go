package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/piccolo-go/piccolo"
)

// A server error swallowed inside a transaction makes Commit return
// ErrCommitRolledBack, whether the failing statement was the first (sent
// right after the queued BEGIN) or a later one: nothing is committed.
func TestSwallowedServerErrorMakesCommitRollBack(t *testing.T) {
	firstOrLater(t, func(t *testing.T, e *piccolo.PostgresEngine, table string, first bool) {
		err := e.Transaction(context.Background(), func(ctx context.Context) error {
			if !first {
				mustInsert(t, ctx, e, table, "a")
			}
			_, _ = e.Exec(ctx, piccolo.Querystring{SQL: "INSERT INTO no_such_table VALUES ($1)", Args: []any{1}}) // swallowed
			if first {
				_ = insert(ctx, e, table, "a")
			}
			return nil
		})
		if !errors.Is(err, piccolo.ErrCommitRolledBack) {
			t.Fatalf("commit after a swallowed server error: %v, want ErrCommitRolledBack", err)
		}
		assertRows(t, e, table)
	})
}

// An argument pgx cannot encode fails on the client, before anything is
// sent: as the first statement of a transaction or a later one, the
// transaction and its connection stay usable and commit what ran.
func TestClientSideEncodeErrorKeepsTheTransaction(t *testing.T) {
	firstOrLater(t, func(t *testing.T, e *piccolo.PostgresEngine, table string, first bool) {
		err := e.Transaction(context.Background(), func(ctx context.Context) error {
			if !first {
				mustInsert(t, ctx, e, table, "a")
			}
			if _, err := e.Exec(ctx, piccolo.Querystring{SQL: "SELECT $1::int2", Args: []any{70000}}); err == nil {
				t.Error("70000 encoded as int2")
			}
			// A client-side error: nothing reached the server, go on.
			if first {
				return insert(ctx, e, table, "a")
			}
			return nil
		})
		if err != nil {
			t.Fatalf("transaction after a client-side encode error: %v", err)
		}
		assertRows(t, e, table, "a")
		assertNoBorrowed(t, e)
	})
}

// A statement whose context ends while it runs takes its connection down:
// the transaction never reports success, commits nothing, gives the
// connection back and leaves the pool working; the closure's own error is
// returned as it was.
func TestStatementCancelledInTransactionFailsTheTransaction(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		first, swallow bool
	}{
		{"later statement, error returned", false, false},
		{"later statement, swallowed", false, true},
		{"first statement, error returned", true, false},
		{"first statement, swallowed", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, table := pooledTable(t)
			var tx *piccolo.PostgresTransaction
			err := e.Transaction(context.Background(), func(ctx context.Context) error {
				tx = e.CurrentTransaction(ctx)
				if !tc.first {
					mustInsert(t, ctx, e, table, "a")
				}
				short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				defer cancel()
				_, err := e.Exec(short, piccolo.Querystring{SQL: "INSERT INTO " + table + " (name) SELECT 'slow' FROM pg_sleep(2)"})
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("cancelled statement: %v", err)
				}
				if tc.swallow {
					return nil
				}
				return err
			})
			if err == nil || tx.Committed() {
				t.Fatalf("transaction whose statement was cancelled mid-flight: err %v, Committed %v", err, tx.Committed())
			}
			if !tc.swallow && !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("the closure's error was replaced: %v", err)
			}
			assertRows(t, e, table)
			assertNoBorrowed(t, e)
			mustInsert(t, context.Background(), e, table, "pool works")
		})
	}
}

// A scan callback that panics (and is recovered by the caller) leaves its
// transaction usable, in its first statement as in a later one: the rows
// are closed on the way out.
func TestRecoveredScanPanicKeepsTheTransaction(t *testing.T) {
	firstOrLater(t, func(t *testing.T, e *piccolo.PostgresEngine, table string, first bool) {
		ctx, tx := mustBegin(t, e)
		if !first {
			mustInsert(t, ctx, e, table, "a")
		}
		func() {
			defer func() { _ = recover() }()
			_ = e.QueryFunc(ctx, piccolo.Querystring{SQL: "SELECT g FROM generate_series(1, 10) g"}, func(pgx.Rows) error {
				panic("decode failed")
			})
		}()
		if err := insert(ctx, e, table, "b"); err != nil {
			t.Fatalf("statement after a recovered scan panic: %v", err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// firstOrLater runs test twice, in parallel, on an engine and a table of
// its own: with the statement under test first in its transaction (first
// true: it goes out right after the queued BEGIN) and after another one.
func firstOrLater(t *testing.T, test func(t *testing.T, e *piccolo.PostgresEngine, table string, first bool)) {
	t.Parallel()
	for _, first := range []bool{false, true} {
		t.Run(fmt.Sprintf("first=%v", first), func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, true, piccolo.PostgresConfig{})
			test(t, e, newTable(t, e), first)
		})
	}
}

// A pending BEGIN, with its options, rides in one pipeline with the
// transaction's first statement once that statement is described: one
// round trip, the statement runs inside the transaction BEGIN opened, its
// rows reach the scan callback, and the log shows both statements, each
// with its own SQL and arguments.
func TestBeginRidesWithTheFirstStatement(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	e, _, counter := roundTripEngine(t, piccolo.PostgresConfig{LogQueries: true, Logger: logger})
	q := piccolo.Querystring{
		SQL:  "SELECT current_setting('transaction_isolation') AS iso, current_setting('transaction_read_only') AS ro, $1::text AS arg",
		Args: []any{"ridden-arg"},
	}
	for run := range 2 { // the first describes the statement
		counter.Reset()
		var rows []map[string]any
		err := e.Transaction(context.Background(), func(ctx context.Context) error {
			var err error
			rows, err = e.RunQuerystring(ctx, q)
			return err
		}, piccolo.Isolation(piccolo.Serializable), piccolo.ReadOnly())
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"iso": "serializable", "ro": "on", "arg": "ridden-arg"}
		if len(rows) != 1 || fmt.Sprint(rows[0]) != fmt.Sprint(want) {
			t.Fatalf("run %d: rows %v, want [%v]", run, rows, want)
		}
	}
	if n := counter.Count(); n != 2 {
		t.Fatalf("a described first statement: %d round trips, want 2 (BEGIN with it, COMMIT)", n)
	}
	out := logs.String()
	begin := strings.LastIndex(out, "sql=\"BEGIN ISOLATION LEVEL serializable READ ONLY\"")
	stmt := strings.LastIndex(out, "ridden-arg")
	if begin < 0 || stmt < begin {
		t.Fatalf("the log does not show BEGIN, then the statement with its argument:\n%s", out)
	}
}

// Rule: a statement whose rows ride in one pipeline with the pending BEGIN
// hands its scan callback rows that know their connection (rows.Conn, as a
// pgx.RowScanner may use for its types), as when it goes alone: whether it
// rides (once described) or not changes nothing the callback can see.
func TestRidingRowsKnowTheirConnection(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	ctx := context.Background()
	mustInsert(t, ctx, e, table, "a")
	q := piccolo.Querystring{SQL: "SELECT id FROM " + table}
	for run := range 2 { // the first run describes the statement, the second rides
		err := e.Transaction(ctx, func(ctx context.Context) error {
			return e.QueryFunc(ctx, q, func(rows pgx.Rows) error {
				if rows.Conn() == nil {
					return errors.New("rows.Conn() is nil")
				}
				var r firstColumn
				return rows.Scan(&r)
			})
		})
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
	}
}
