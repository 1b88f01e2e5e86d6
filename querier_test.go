package piccolo_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
)

// dbtx is sqlc's pgx/v5 DBTX interface, as sqlc generates it.
type dbtx interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
	Query(context.Context, string, ...any) (pgx.Rows, error)
	QueryRow(context.Context, string, ...any) pgx.Row
	CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error)
	SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
}

var _ dbtx = (*piccolo.Querier)(nil)

// queryInt reads one int8 through the querier's QueryRow.
func queryInt(t testing.TB, ctx context.Context, q dbtx, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := q.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// querierInsert inserts name into table through the querier.
func querierInsert(t testing.TB, ctx context.Context, q dbtx, table, name string) {
	t.Helper()
	if _, err := q.Exec(ctx, "INSERT INTO "+table+" (name) VALUES ($1)", name); err != nil {
		t.Fatalf("insert %q: %v", name, err)
	}
}

// Inside Transaction the querier's calls run in that transaction: they
// share txid_current() with the engine's statements and roll back with it.
func TestQuerierJoinsTheContextTransaction(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	q := e.Querier()
	inRolledBackTransaction(t, e, table, func(ctx context.Context) {
		querierInsert(t, ctx, q, table, "a")
		mine := queryInt(t, ctx, q, "SELECT txid_current()")
		if engines := scalar[int64](t, ctx, e, "SELECT txid_current()"); engines != mine {
			t.Errorf("txid: querier %d, engine %d", mine, engines)
		}
		// Query also carries INSERT ... RETURNING, on the transaction.
		rows, err := q.Query(ctx, "INSERT INTO "+table+" (name) VALUES ('b') RETURNING txid_current()")
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil || len(ids) != 1 || ids[0] != mine {
			t.Errorf("INSERT ... RETURNING: %v %v, want txid %d", ids, err, mine)
		}
		if got := names(t, e, table); len(got) != 0 {
			t.Errorf("uncommitted rows seen outside: %v", got)
		}
	})
}

// inRolledBackTransaction runs fn in a transaction of e that then rolls
// back, and checks that table is empty afterwards and that no connection
// stays borrowed.
func inRolledBackTransaction(t *testing.T, e *piccolo.PostgresEngine, table string, fn func(ctx context.Context)) {
	t.Helper()
	errStop := errors.New("stop")
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		fn(ctx)
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Transaction: %v", err)
	}
	assertEmptyAndReturned(t, e, table)
}

// assertEmptyAndReturned fails when table has rows or e's pool still lends
// connections.
func assertEmptyAndReturned(t *testing.T, e *piccolo.PostgresEngine, table string) {
	t.Helper()
	assertRows(t, e, table)
	assertNoBorrowed(t, e)
}

// After its transaction ended, a context's querier calls return
// ErrTransactionDone, never running in autocommit.
func TestQuerierAfterTransactionEndsReturnsErrTransactionDone(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	q := e.Querier()
	kept := finishedTxContext(t, e)
	calls := map[string]func() error{
		"Exec": func() error {
			_, err := q.Exec(kept, "INSERT INTO "+table+" (name) VALUES ('late')")
			return err
		},
		"Query": func() error {
			_, err := q.Query(kept, "INSERT INTO "+table+" (name) VALUES ('late') RETURNING id")
			return err
		},
		"QueryRow":  func() error { var n int; return q.QueryRow(kept, "SELECT 1").Scan(&n) },
		"SendBatch": func() error { return q.SendBatch(kept, &pgx.Batch{}).Close() },
		"CopyFrom": func() error {
			_, err := q.CopyFrom(kept, pgx.Identifier{table[1 : len(table)-1]}, []string{"name"}, pgx.CopyFromRows([][]any{{"late"}}))
			return err
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, piccolo.ErrTransactionDone) {
			t.Errorf("%s: %v, want ErrTransactionDone", name, err)
		}
	}
	assertEmptyAndReturned(t, e, table)
}

// A NestSavepoint block's querier calls roll back with the block only.
func TestQuerierSavepointBlockRollsBackOnlyItsPart(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	q := e.Querier()
	errInner := errors.New("inner fails")
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		querierInsert(t, ctx, q, table, "outer")
		err := e.Transaction(ctx, func(ctx context.Context) error {
			querierInsert(t, ctx, q, table, "inner")
			return errInner
		}, piccolo.Nesting(piccolo.NestSavepoint))
		if !errors.Is(err, errInner) {
			t.Errorf("savepoint block: %v", err)
		}
		querierInsert(t, ctx, q, table, "after")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	assertRows(t, e, table, "outer", "after")
}

// Retry re-runs the querier's calls with the whole closure: the failed
// attempt's work is rolled back, the retried one committed.
func TestQuerierCallsRunAgainUnderRetry(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	q := e.Querier()
	attempts := 0
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		attempts++
		querierInsert(t, ctx, q, table, "once")
		if attempts == 1 {
			_, err := q.Exec(ctx, `DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$`)
			return err
		}
		return nil
	}, piccolo.Retry(3))
	if err != nil || attempts != 2 {
		t.Fatalf("Transaction: %v after %d attempts, want nil after 2", err, attempts)
	}
	if got := names(t, e, table); len(got) != 1 {
		t.Fatalf("rows: %v, want the retried attempt's one", got)
	}
}

// CopyFrom and SendBatch run in the context's transaction and roll back
// with it.
func TestQuerierCopyFromAndSendBatchInTransaction(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	q := e.Querier()
	inRolledBackTransaction(t, e, table, func(ctx context.Context) {
		txid := scalar[int64](t, ctx, e, "SELECT txid_current()")
		n, err := q.CopyFrom(ctx, pgx.Identifier{table[1 : len(table)-1]}, []string{"name"},
			pgx.CopyFromRows([][]any{{"c1"}, {"c2"}}))
		if err != nil || n != 2 {
			t.Fatalf("CopyFrom: %d %v", n, err)
		}
		b := &pgx.Batch{}
		b.Queue("INSERT INTO " + table + " (name) VALUES ('b1')")
		b.Queue("SELECT txid_current()")
		b.Queue("SELECT count(*) FROM " + table)
		br := q.SendBatch(ctx, b)
		if _, err := br.Exec(); err != nil {
			t.Errorf("batch insert: %v", err)
		}
		var batchTxid, count int64
		if err := br.QueryRow().Scan(&batchTxid); err != nil || batchTxid != txid {
			t.Errorf("batch txid %d %v, want %d", batchTxid, err, txid)
		}
		if err := br.QueryRow().Scan(&count); err != nil || count != 3 {
			t.Errorf("batch sees %d rows %v, want 3", count, err)
		}
		if err := br.Close(); err != nil {
			t.Errorf("batch Close: %v", err)
		}
	})
}

// Without ReadRouting, WithRead changes nothing: the statement runs on
// the primary.
func TestQuerierWithReadWithoutReadRoutingRunsOnPrimary(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	var inRecovery bool
	if err := e.Querier().QueryRow(piccolo.WithRead(context.Background()), "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || inRecovery {
		t.Fatalf("pg_is_in_recovery() = %v, %v on an engine without ReadRouting", inRecovery, err)
	}
}

// The querier's statements are logged like the engine's own, each with
// its arguments, batches and COPY included.
func TestQuerierStatementsAreLogged(t *testing.T) {
	t.Parallel()
	e, logs := loggedEngine(t)
	table := newTable(t, e)
	q := e.Querier()
	ctx := context.Background()
	err := e.Transaction(ctx, func(ctx context.Context) error {
		querierInsert(t, ctx, q, table, "exec-arg")
		rows, err := q.Query(ctx, "SELECT name FROM "+table+" WHERE name <> $1", "query-arg")
		if err != nil {
			return err
		}
		rows.Close()
		b := &pgx.Batch{}
		b.Queue("INSERT INTO "+table+" (name) VALUES ($1)", "batch-arg")
		if err := q.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		_, err = q.CopyFrom(ctx, pgx.Identifier{table[1 : len(table)-1]}, []string{"name"}, pgx.CopyFromRows([][]any{{"copied"}}))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, want := range []string{"BEGIN", "exec-arg", "query-arg", "batch-arg", "COPY", "COMMIT"} {
		if !strings.Contains(out, want) {
			t.Errorf("log has no %q:\n%s", want, out)
		}
	}
}
