package piccolo_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/piccolo-go/piccolo"
)

// While a NestSavepoint block is open, a statement through a context whose
// transaction is not inside that block (another goroutine's root context,
// or an outer context a closure captured) is refused with ErrConnBusy
// before any I/O: sent, it would run inside the block's savepoint, report
// success, and the block's rollback would silently undo it. (An Atomic is
// a joined block: its failure makes the outer transaction rollback-only,
// as any failed joined block does.)
func TestOuterStatementsRefusedWhileSavepointBlockOpen(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	calls := []struct {
		name    string
		run     func(ctx context.Context, table string) error
		poisons bool // the outer transaction becomes rollback-only
	}{
		{"Exec", func(ctx context.Context, table string) error { return insert(ctx, e, table, "outer") }, false},
		{"Atomic", func(ctx context.Context, table string) error {
			return e.Atomic().Add(piccolo.Raw("INSERT INTO " + table + " (name) VALUES ('outer')")).Run(ctx)
		}, true},
		{"Batch", func(ctx context.Context, _ string) error {
			b, err := e.Batch(ctx, seriesQuery(3))
			if err == nil {
				err = errors.Join(errors.New("batch opened"), b.Close(ctx))
			}
			return err
		}, false},
		{"Savepoint", func(ctx context.Context, _ string) error {
			_, err := e.CurrentTransaction(ctx).Savepoint(ctx, "outer")
			return err
		}, false},
	}
	for _, goroutine := range []bool{true, false} {
		for _, call := range calls {
			name := call.name + " through a captured outer context"
			if goroutine {
				name = call.name + " from another goroutine"
			}
			t.Run(name, func(t *testing.T) {
				table := newTable(t, e)
				var callErr error
				err := e.Transaction(context.Background(), func(rootCtx context.Context) error {
					err := e.Transaction(rootCtx, func(ctx context.Context) error {
						mustInsert(t, ctx, e, table, "inner")
						if !goroutine {
							callErr = call.run(rootCtx, table)
							return errBoom
						}
						done := make(chan error)
						go func() { done <- call.run(rootCtx, table) }()
						callErr = <-done
						return errBoom
					}, piccolo.Nesting(piccolo.NestSavepoint))
					if !errors.Is(err, errBoom) {
						t.Errorf("block: %v, want errBoom", err)
					}
					return insert(rootCtx, e, table, "after")
				})
				want := []string{"after"}
				if call.poisons {
					want = nil
					if !errors.Is(err, piccolo.ErrTransactionDone) {
						t.Errorf("outer transaction after a failed Atomic: %v, want ErrTransactionDone", err)
					}
				} else if err != nil {
					t.Fatalf("outer transaction: %v", err)
				}
				if !errors.Is(callErr, piccolo.ErrConnBusy) || !strings.Contains(callErr.Error(), "NestSavepoint block") {
					t.Errorf("outer %s while a block is open: %v, want ErrConnBusy naming the open block", call.name, callErr)
				}
				if got := names(t, e, table); !slices.Equal(got, want) {
					t.Fatalf("rows %v, want %v", got, want)
				}
			})
		}
	}
}

// A Batch opened outside a NestSavepoint block can be read and closed from
// inside it: cursor motion and CLOSE are not undone by ROLLBACK TO (only
// cursors opened inside the rolled-back savepoint close), so the block's
// rollback loses nothing of the batch.
func TestOuterBatchReadableInsideSavepointBlock(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	err := e.Transaction(context.Background(), func(rootCtx context.Context) error {
		read, err := e.Batch(rootCtx, seriesQuery(4), piccolo.BatchSize(1))
		if err != nil {
			return err
		}
		closed, err := e.Batch(rootCtx, seriesQuery(4), piccolo.BatchSize(1))
		if err != nil {
			return err
		}
		var got []any
		next := func(ctx context.Context) error {
			rows, err := read.Next(ctx)
			for _, r := range rows {
				got = append(got, r["i"])
			}
			return err
		}
		if err := next(rootCtx); err != nil {
			return err
		}
		err = e.Transaction(rootCtx, func(ctx context.Context) error {
			if err := next(ctx); err != nil { // the block's context
				return err
			}
			if err := next(rootCtx); err != nil { // the outer context it captured
				return err
			}
			if err := closed.Close(ctx); err != nil {
				return err
			}
			return errBoom
		}, piccolo.Nesting(piccolo.NestSavepoint))
		if !errors.Is(err, errBoom) {
			return err
		}
		if err := next(rootCtx); err != nil {
			return err
		}
		if !slices.Equal(got, []any{int32(1), int32(2), int32(3), int32(4)}) {
			t.Errorf("rows %v, want 1 2 3 4: the block's rollback moved the cursor", got)
		}
		if err := read.Close(rootCtx); err != nil {
			return err
		}
		if n := scalar[int64](t, rootCtx, e, "SELECT count(*) FROM pg_cursors WHERE name LIKE 'piccolo_batch_%'"); n != 0 {
			t.Errorf("%d cursors open after both batches closed", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
