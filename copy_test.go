package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestCopyFrom(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	ident := pgx.Identifier{table[1 : len(table)-1]}
	rows := make([][]any, 1000)
	for i := range rows {
		rows[i] = []any{fmt.Sprint("row ", i), int32(i)}
	}
	ctx := context.Background()
	n, err := e.CopyFrom(ctx, ident, []string{"name", "n"}, pgx.CopyFromRows(rows))
	if err != nil || n != 1000 {
		t.Fatalf("CopyFrom: %d, %v", n, err)
	}
	// Inside a transaction, COPY runs on its connection and rolls back with it.
	err = e.Transaction(ctx, func(ctx context.Context) error {
		if _, err := e.CopyFrom(ctx, ident, []string{"name", "n"}, pgx.CopyFromRows([][]any{{"in tx", int32(-1)}})); err != nil {
			return err
		}
		if got := scalar[int64](t, ctx, e, "SELECT count(*) FROM "+table); got != 1001 {
			t.Errorf("the transaction sees %d rows, want 1001", got)
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("transaction: %v", err)
	}
	if got := scalar[int64](t, ctx, e, "SELECT sum(n) FROM "+table); got != 999*1000/2 {
		t.Fatalf("sum %d: the rolled-back COPY left rows, or rows were lost", got)
	}
	// A duplicate key fails the whole COPY.
	if _, err := e.CopyFrom(ctx, ident, []string{"name"}, pgx.CopyFromRows([][]any{{"x"}, {"x"}})); err == nil {
		t.Fatal("COPY with a duplicate unique key succeeded")
	}
	assertNoBorrowed(t, e)
}
