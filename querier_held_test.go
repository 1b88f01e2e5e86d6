package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
)

// The rules of the connection that the querier's rows and batch results
// hold until they are closed.

// Outside a transaction the querier borrows a pooled connection, which
// rows hold until they are closed, read to the end, or fail, and which
// QueryRow's Scan and a batch's Close give back.
func TestQuerierOutsideTransactionUsesThePool(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	q := e.Querier()
	ctx := context.Background()
	borrowed := func(want int32, when string) {
		t.Helper()
		if got := e.Stat().AcquiredConns(); got != want {
			t.Fatalf("%s: %d connections borrowed, want %d", when, got, want)
		}
	}
	rows, err := q.Query(ctx, "SELECT generate_series(1, 3)")
	if err != nil {
		t.Fatal(err)
	}
	borrowed(1, "rows open")
	rows.Close()
	rows.Close() // idempotent
	borrowed(0, "after Close")

	rows, err = q.Query(ctx, "SELECT generate_series(1, 3)")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	if n != 3 || rows.Err() != nil {
		t.Fatalf("read %d rows, err %v", n, rows.Err())
	}
	borrowed(0, "rows read to the end")

	rows, err = q.Query(ctx, "SELECT 1 / (3 - generate_series(1, 5))")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
	}
	var pgErr *pgconn.PgError
	if !errors.As(rows.Err(), &pgErr) || pgErr.Code != "22012" {
		t.Fatalf("division by zero: %v", rows.Err())
	}
	borrowed(0, "rows that failed")

	if _, err := q.Query(ctx, "SELEC 1"); err == nil {
		t.Fatal("a syntax error returned no error")
	}
	borrowed(0, "Query that failed")

	if got := queryInt(t, ctx, q, "SELECT 7"); got != 7 {
		t.Fatalf("QueryRow: %d", got)
	}
	var none int
	if err := q.QueryRow(ctx, "SELECT 1 WHERE false").Scan(&none); !errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("QueryRow of no row: %v, want pgx.ErrNoRows", err)
	}
	b := &pgx.Batch{}
	b.Queue("SELECT 1")
	br := q.SendBatch(ctx, b)
	borrowed(1, "batch open")
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	borrowed(0, "after the batch's Close")

	b = &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue("SELECT 1")
	if err := q.SendBatch(ctx, b).Close(); !errors.Is(err, piccolo.ErrTransactionControl) {
		t.Fatalf("a batch with BeginTx: %v, want ErrTransactionControl", err)
	}
	borrowed(0, "a refused batch")
}

// Without a pool, the querier's rows hold a one-shot connection, closed
// with them.
func TestQuerierWithoutPoolUsesOneShotConnection(t *testing.T) {
	t.Parallel()
	e := newEngine(t, false, piccolo.PostgresConfig{})
	q := e.Querier()
	ctx := context.Background()
	rows, err := q.Query(ctx, "SELECT pg_backend_pid()")
	if err != nil {
		t.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil || len(pids) != 1 {
		t.Fatalf("rows: %v %v", pids, err)
	}
	eventually(t, "one-shot connection closed", func() error {
		if queryInt(t, ctx, q, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pids[0]) != 0 {
			return errors.New("still connected")
		}
		return nil
	})
}

// While rows of a transaction are open, a statement from the goroutine
// reading them returns ErrConnBusy instead of waiting for itself; another
// goroutine waits its turn and runs once the rows are closed.
func TestQuerierOpenRowsRefuseStatementsFromTheSameGoroutine(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	q := e.Querier()
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		rows, err := q.Query(ctx, "SELECT generate_series(1, 3)")
		if err != nil {
			return err
		}
		// A deadline turns a hang into a failure the test can read.
		bounded, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := q.Exec(bounded, "INSERT INTO "+table+" (name) VALUES ('busy')"); !errors.Is(err, piccolo.ErrConnBusy) {
			t.Errorf("querier Exec while rows are open: %v, want ErrConnBusy", err)
		}
		if _, err := e.Exec(bounded, piccolo.Querystring{SQL: "SELECT 1"}); !errors.Is(err, piccolo.ErrConnBusy) {
			t.Errorf("engine Exec while rows are open: %v, want ErrConnBusy", err)
		}
		var closed atomic.Bool
		waited := make(chan bool)
		go func() {
			_, err := q.Exec(bounded, "INSERT INTO "+table+" (name) VALUES ('turn')")
			if err != nil {
				t.Errorf("another goroutine's Exec: %v", err)
			}
			waited <- closed.Load()
		}()
		// Read the three rows without reaching the end, which would close
		// them (and give the turn away) before closed is set.
		for i := range 3 {
			if !rows.Next() {
				t.Errorf("row %d missing: %v", i+1, rows.Err())
			}
		}
		closed.Store(true)
		rows.Close()
		if !<-waited {
			t.Error("another goroutine ran while the rows were open")
		}
		_, err = q.Exec(ctx, "INSERT INTO "+table+" (name) VALUES ('after')")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	assertRows(t, e, table, "turn", "after")
	assertNoBorrowed(t, e)
}

// Rule 13: while rows of a transaction are open, every call of the
// Querier that needs the connection (Query, QueryRow and SendBatch take it
// from a goroutine of their own, on the reader's behalf) returns
// ErrConnBusy from the goroutine reading them, never waits for itself.
func TestQuerierOpenRowsRefuseEveryQuerierCallFromTheSameGoroutine(t *testing.T) {
	t.Parallel()
	e, _ := pooledTable(t)
	q := e.Querier()
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Query", func(ctx context.Context) error {
			rows, err := q.Query(ctx, "SELECT 1")
			if err == nil {
				rows.Close()
				err = rows.Err()
			}
			return err
		}},
		{"QueryRow", func(ctx context.Context) error {
			var n int
			return q.QueryRow(ctx, "SELECT 1").Scan(&n)
		}},
		{"SendBatch", func(ctx context.Context) error {
			b := &pgx.Batch{}
			b.Queue("SELECT 1")
			return q.SendBatch(ctx, b).Close()
		}},
	}
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		rows, err := q.Query(ctx, "SELECT generate_series(1, 3)")
		if err != nil {
			return err
		}
		defer rows.Close()
		for _, c := range calls {
			// A deadline turns a hang into a failure the test can read.
			bounded, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := c.call(bounded); !errors.Is(err, piccolo.ErrConnBusy) {
				t.Errorf("%s while rows are open: %v, want ErrConnBusy", c.name, err)
			}
			cancel()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	assertNoBorrowed(t, e)
}

// Rule 13: a block whose end needs no connection (a joined block) leaves
// the reader's rows open, so a loop over them goes on; the root's end
// closes them.
func TestQuerierRowsStayOpenAcrossAJoinedBlock(t *testing.T) {
	t.Parallel()
	e, _ := pooledTable(t)
	q := e.Querier()
	var rows pgx.Rows
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		var err error
		rows, err = q.Query(ctx, "SELECT generate_series(1, 3)")
		if err != nil {
			return err
		}
		for i := 1; rows.Next(); i++ {
			var n int
			if err := rows.Scan(&n); err != nil || n != i {
				return fmt.Errorf("row %d: %d, %v", i, n, err)
			}
			if i == 2 {
				return nil // the root's end closes the rows
			}
			if err := e.Transaction(ctx, func(context.Context) error { return nil }); err != nil {
				return fmt.Errorf("joined block inside the loop: %w", err)
			}
		}
		return fmt.Errorf("the rows ended early: %v", rows.Err())
	})
	if err != nil {
		t.Fatal(err)
	}
	if rows.Next() {
		t.Error("rows closed by the root's end gave a row")
	}
	assertNoBorrowed(t, e)
}

// Rows or batch results a closure leaves open are closed when its block
// ends (the rest read, so their statement completes), instead of holding
// the transaction's connection for ever; closing them later is harmless.
func TestQuerierResultsLeftOpenCloseWhenTheBlockEnds(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	q := e.Querier()
	var rows pgx.Rows
	var results pgx.BatchResults
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		err := e.Transaction(ctx, func(ctx context.Context) error {
			b := &pgx.Batch{}
			b.Queue("INSERT INTO " + table + " (name) VALUES ('batch')")
			results = q.SendBatch(ctx, b)
			return nil
		}, piccolo.Nesting(piccolo.NestSavepoint))
		if err != nil {
			return err
		}
		rows, err = q.Query(ctx, "INSERT INTO "+table+" (name) VALUES ('a'), ('b') RETURNING id")
		return err
	})
	if err != nil {
		t.Fatalf("Transaction with results left open: %v", err)
	}
	assertRows(t, e, table, "batch", "a", "b")
	if rows.Next() {
		t.Error("rows closed by the transaction's end gave a row")
	}
	rows.Close()
	if err := results.Close(); err != nil {
		t.Errorf("batch results closed by the block's end: %v", err)
	}
	assertNoBorrowed(t, e)
}
