package piccolo_test

import (
	"context"
	"errors"
	"testing"

	"github.com/piccolo-go/piccolo"
)

// TestDBSharesThePoolOutsideTransactions pins what DB promises: an error,
// not a panic, without a running pool or after Close; with one, a *sql.DB
// whose connections are the pool's, which never joins the context's
// transaction, and whose Close leaves the pool running.
func TestDBSharesThePoolOutsideTransactions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEngine(t, false, piccolo.PostgresConfig{})
	if _, err := e.DB(); !errors.Is(err, piccolo.ErrNoPool) {
		t.Fatalf("DB without a pool: %v, want ErrNoPool", err)
	}
	if err := e.StartConnectionPool(ctx); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	table := newTable(t, e)
	db, err := e.DB()
	if err != nil {
		t.Fatal(err)
	}
	err = e.Transaction(ctx, func(ctx context.Context) error {
		mustInsert(t, ctx, e, table, "uncommitted")
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			return err
		}
		if n != 0 {
			t.Errorf("DB saw %d rows of the context's uncommitted transaction, want 0: it is not transaction-aware", n)
		}
		if got := e.Stat().AcquiredConns(); got != 1 {
			t.Errorf("%d connections borrowed after DB's query ended, want the transaction's 1: DB keeps no idle connection", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if got := scalar[int64](t, ctx, e, "SELECT count(*) FROM "+table); got != 1 {
		t.Fatalf("after DB's Close the pool answered %d rows, want 1", got)
	}
	e.Close()
	if _, err := e.DB(); !errors.Is(err, piccolo.ErrEngineClosed) {
		t.Fatalf("DB after Close: %v, want ErrEngineClosed", err)
	}
}
