package piccolo_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
)

func TestNestJoin(t *testing.T) {
	t.Parallel()
	t.Run("inner commit does nothing, outer decides", func(t *testing.T) {
		t.Parallel()
		e, table := pooledTable(t)
		err := e.Transaction(context.Background(), func(ctx context.Context) error {
			outerTxid := scalar[int64](t, ctx, e, "SELECT txid_current()")
			err := e.Transaction(ctx, func(ctx context.Context) error {
				if got := scalar[int64](t, ctx, e, "SELECT txid_current()"); got != outerTxid {
					t.Errorf("joined block ran in txid %d, outer %d", got, outerTxid)
				}
				return insert(ctx, e, table, "inner")
			})
			if err != nil {
				return err
			}
			// The outer transaction still runs and can roll everything back.
			return errBoom
		})
		if !errors.Is(err, errBoom) {
			t.Fatal(err)
		}
		assertRows(t, e, table) // the joined block's row went with the outer rollback
	})
	for _, failure := range []string{"error", "panic", "rollback"} {
		t.Run("inner "+failure+" makes the transaction rollback-only", func(t *testing.T) {
			t.Parallel()
			e, table := pooledTable(t)
			var committed atomic.Bool
			err := e.Transaction(context.Background(), func(ctx context.Context) error {
				e.CurrentTransaction(ctx).OnCommit(func(context.Context) { committed.Store(true) })
				mustInsert(t, ctx, e, table, "outer")
				func() {
					defer func() { _ = recover() }()
					_ = e.Transaction(ctx, func(ctx context.Context) error {
						mustInsert(t, ctx, e, table, "inner")
						switch failure {
						case "panic":
							panic("inner")
						case "rollback":
							return e.CurrentTransaction(ctx).Rollback(ctx)
						}
						return errBoom
					})
				}()
				// The outer block swallows the failure and goes on.
				if err := insert(ctx, e, table, "after"); !errors.Is(err, piccolo.ErrTransactionDone) {
					t.Errorf("statement after a failed joined block: %v, want ErrTransactionDone", err)
				}
				return nil
			})
			if !errors.Is(err, piccolo.ErrCommitRolledBack) {
				t.Fatalf("outer commit: %v, want ErrCommitRolledBack", err)
			}
			assertRows(t, e, table) // no half of the transaction was committed
			if committed.Load() {
				t.Fatal("OnCommit ran for a transaction that rolled back")
			}
			assertNoBorrowed(t, e)
		})
	}
}

func TestNestRefuse(t *testing.T) {
	t.Parallel()
	e, logs := loggedEngine(t)
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		err := e.Transaction(ctx, func(context.Context) error { return nil }, piccolo.Nesting(piccolo.NestRefuse))
		if !errors.Is(err, piccolo.ErrNestedTransaction) {
			t.Errorf("nested Transaction: %v", err)
		}
		if _, _, err := e.Begin(ctx, piccolo.Nesting(piccolo.NestRefuse)); !errors.Is(err, piccolo.ErrNestedTransaction) {
			t.Errorf("nested Begin: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if logs.String() != "" {
		t.Fatalf("refusing a nested transaction did I/O:\n%s", logs)
	}
	// Outside a transaction, NestRefuse starts one as usual.
	if err := e.Transaction(context.Background(), func(context.Context) error { return nil }, piccolo.Nesting(piccolo.NestRefuse)); err != nil {
		t.Fatal(err)
	}
}

func TestNestSavepoint(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	sp := piccolo.Nesting(piccolo.NestSavepoint)
	var hooks []string
	var mu sync.Mutex
	hook := func(name string) func(context.Context) {
		return func(context.Context) { mu.Lock(); hooks = append(hooks, name); mu.Unlock() }
	}
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		mustInsert(t, ctx, e, table, "outer")
		// A failing savepoint block rolls back only its own work.
		err := e.Transaction(ctx, func(ctx context.Context) error {
			e.CurrentTransaction(ctx).OnCommit(hook("dropped"))
			e.CurrentTransaction(ctx).OnRollback(hook("inner rolled back"))
			mustInsert(t, ctx, e, table, "lost")
			return errBoom
		}, sp)
		if !errors.Is(err, errBoom) {
			t.Errorf("failing savepoint block: %v", err)
		}
		// A server error inside a savepoint block does not poison the outer one.
		err = e.Transaction(ctx, func(ctx context.Context) error {
			return insert(ctx, e, table, "outer") // unique violation
		}, sp)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
			t.Errorf("unique violation in savepoint block: %v", err)
		}
		// A block that swallows its error cannot commit its half.
		err = e.Transaction(ctx, func(ctx context.Context) error {
			mustInsert(t, ctx, e, table, "swallowed")
			_ = insert(ctx, e, table, "outer")
			return nil
		}, sp)
		if !errors.Is(err, piccolo.ErrCommitRolledBack) {
			t.Errorf("savepoint block with a swallowed error: %v", err)
		}
		// A succeeding block keeps its work and its hooks go to the parent.
		err = e.Transaction(ctx, func(ctx context.Context) error {
			e.CurrentTransaction(ctx).OnCommit(hook("kept"))
			return insert(ctx, e, table, "kept")
		}, sp)
		if err != nil {
			return err
		}
		// Nested savepoint blocks.
		return e.Transaction(ctx, func(ctx context.Context) error {
			mustInsert(t, ctx, e, table, "level2")
			_ = e.Transaction(ctx, func(ctx context.Context) error {
				mustInsert(t, ctx, e, table, "level3")
				return errBoom
			}, sp)
			return nil
		}, sp)
	})
	if err != nil {
		t.Fatal(err)
	}
	assertRows(t, e, table, "outer", "kept", "level2")
	if want := []string{"inner rolled back", "kept"}; !slices.Equal(hooks, want) {
		t.Fatalf("hooks ran: %v, want %v", hooks, want)
	}
}

func TestBeginNesting(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	ctx, outer := mustBegin(t, e)
	mustInsert(t, ctx, e, table, "outer")

	spCtx, sp := mustBeginIn(t, ctx, e, piccolo.Nesting(piccolo.NestSavepoint))
	mustInsert(t, spCtx, e, table, "inner")
	if err := sp.Rollback(spCtx); err != nil {
		t.Fatal(err)
	}
	if err := insert(spCtx, e, table, "x"); !errors.Is(err, piccolo.ErrTransactionDone) {
		t.Fatalf("statement through a rolled-back savepoint block: %v", err)
	}
	joinCtx, joined := mustBeginIn(t, ctx, e)
	mustInsert(t, joinCtx, e, table, "joined")
	if err := joined.Commit(joinCtx); err != nil {
		t.Fatal(err)
	}
	if !e.TransactionExists(ctx) {
		t.Fatal("committing a joined block ended the outer transaction")
	}
	if err := outer.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	assertRows(t, e, table, "outer", "joined")
}
