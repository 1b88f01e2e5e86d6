package piccolo

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/piccolo-go/piccolo/pgtest"
)

// The pipeline checks after every step that the transaction is still open
// on the server. Should SQL end it anyway (planAtomic refuses transaction
// control; this test goes around it), nothing after that step runs: it
// would run in autocommit and stay committed while the Atomic fails.
func TestAtomicPipelineStopsWhenSQLEndsTheTransaction(t *testing.T) {
	t.Parallel()
	e, err := NewPostgresEngine(PostgresConfig{DSN: pgtest.DSN(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.StartConnectionPool(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	table := "atomic_ended_by_sql"
	if err := e.RunDDL(ctx, "CREATE TABLE "+table+" (id int)"); err != nil {
		t.Fatal(err)
	}
	var failed int
	var pipeErr error
	err = e.Transaction(ctx, func(ctx context.Context) error {
		failed, pipeErr = e.txFrom(ctx).pipeline(ctx, []Querystring{
			{SQL: "INSERT INTO " + table + " VALUES (1)"},
			{SQL: "COMMIT"},
			{SQL: "INSERT INTO " + table + " VALUES (2)"},
			{SQL: "CREATE TABLE " + table + " (id int)"}, // fails: it exists
		})
		return pipeErr
	})
	if !errors.Is(pipeErr, ErrTransactionDone) || failed != 1 {
		t.Errorf("pipeline: failed at %d with %v, want 1 and ErrTransactionDone", failed, pipeErr)
	}
	if err == nil {
		t.Error("Transaction succeeded")
	}
	rows, err := e.RunQuerystring(ctx, Querystring{SQL: "SELECT id FROM " + table + " ORDER BY id"})
	if err != nil {
		t.Fatal(err)
	}
	// Row 1 went with the COMMIT the SQL sent; row 2 must never have run.
	if got := fmt.Sprint(rows); got != "[map[id:1]]" {
		t.Fatalf("rows %s, want only the one the SQL's COMMIT committed", got)
	}
}
