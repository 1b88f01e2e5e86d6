package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
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
				assertRows(t, e, table, want...)
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

// A NestSavepoint block whose first statement fails before it runs rolls
// back to its own savepoint, which was sent first: the outer transaction
// goes on with its work intact.
func TestSavepointBlockWhoseFirstStatementFailsRollsBackOnlyItself(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		mustInsert(t, ctx, e, table, "outer")
		inner := e.Transaction(ctx, func(ctx context.Context) error {
			_, err := e.Exec(ctx, piccolo.Querystring{SQL: "INSERT INTO no_such_table VALUES ($1)", Args: []any{1}})
			return err
		}, piccolo.Nesting(piccolo.NestSavepoint))
		var pgErr *pgconn.PgError
		if !errors.As(inner, &pgErr) || pgErr.Code != "42P01" {
			t.Errorf("inner block: %v, want 42P01", inner)
		}
		if strings.Contains(fmt.Sprint(inner), "3B001") {
			t.Errorf("inner block's rollback failed: %v", inner)
		}
		return insert(ctx, e, table, "outer again")
	})
	if err != nil {
		t.Fatalf("outer transaction: %v", err)
	}
	assertRows(t, e, table, "outer", "outer again")
	assertNoBorrowed(t, e)
}

// A savepoint block that rolls back keeps none of its work, even when the
// closure made a savepoint of its own named like a generated one
// (savepoint_1): the block's savepoint has a name no caller can choose.
func TestRolledBackSavepointBlockKeepsNothing(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		mustInsert(t, ctx, e, table, "outer")
		inner := e.Transaction(ctx, func(ctx context.Context) error {
			mustInsert(t, ctx, e, table, "inner")
			if _, err := e.CurrentTransaction(ctx).Savepoint(ctx, "savepoint_1"); err != nil {
				return err
			}
			mustInsert(t, ctx, e, table, "inner 2")
			return errBoom
		}, piccolo.Nesting(piccolo.NestSavepoint))
		if !errors.Is(inner, errBoom) {
			t.Errorf("inner: %v", inner)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	assertRows(t, e, table, "outer") // a rolled-back savepoint block leaves no rows behind
}

// When the connection dies inside a savepoint block, the whole
// transaction rolls back and the block's OnRollback hooks run.
func TestSavepointBlockOnRollbackHooksRunWhenItsConnectionDies(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	killer := newEngine(t, false, piccolo.PostgresConfig{})
	table := newTable(t, e)
	var ran atomic.Bool
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		mustInsert(t, ctx, e, table, "outer")
		return e.Transaction(ctx, func(ctx context.Context) error {
			e.CurrentTransaction(ctx).OnRollback(func(context.Context) { ran.Store(true) })
			mustInsert(t, ctx, e, table, "inner")
			pid := scalar[int32](t, ctx, e, "SELECT pg_backend_pid()")
			scalar[bool](t, context.Background(), killer, "SELECT pg_terminate_backend($1)", pid)
			return insert(ctx, e, table, "dead")
		}, piccolo.Nesting(piccolo.NestSavepoint))
	})
	if err == nil {
		t.Fatal("transaction on a killed connection succeeded")
	}
	if !ran.Load() {
		t.Fatalf("OnRollback hook of the savepoint block did not run (err %v)", err)
	}
	assertNoBorrowed(t, e)
}

// Savepoint blocks form a stack on the transaction's connection: a
// NestSavepoint block can open only inside the innermost open one. A
// sibling, e.g. from another goroutine sharing the transaction, is refused
// with ErrNestedTransaction (whose ROLLBACK TO would undo the other's
// released work); it never waits. Joined blocks are unaffected.
func TestSavepointBlocksFormAStack(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	sp := piccolo.Nesting(piccolo.NestSavepoint)
	ctx, tx := mustBegin(t, e)
	aCtx, a := mustBeginIn(t, ctx, e, sp)
	mustInsert(t, aCtx, e, table, "a")

	// A sibling of a, by Begin or Transaction, is refused before any I/O.
	if _, _, err := e.Begin(ctx, sp); !errors.Is(err, piccolo.ErrNestedTransaction) ||
		!strings.Contains(err.Error(), "still open") {
		t.Fatalf("sibling Begin: %v, want ErrNestedTransaction saying another block is still open", err)
	}
	ran := false
	err := e.Transaction(ctx, func(context.Context) error { ran = true; return nil }, sp)
	if !errors.Is(err, piccolo.ErrNestedTransaction) || ran {
		t.Fatalf("sibling Transaction: %v (closure ran %v), want ErrNestedTransaction", err, ran)
	}
	// Also from a joined block of the root.
	joinedCtx, joined := mustBeginIn(t, ctx, e) // a joined block beside an open savepoint block
	if _, _, err := e.Begin(joinedCtx, sp); !errors.Is(err, piccolo.ErrNestedTransaction) {
		t.Fatalf("sibling Begin from a joined block: %v, want ErrNestedTransaction", err)
	}
	// Left open, it would make the root's Commit roll back.
	if err := joined.Commit(joinedCtx); err != nil {
		t.Fatalf("commit of the joined block: %v", err)
	}
	// Inside a, a block may open (and, joined inside a, too).
	err = e.Transaction(aCtx, func(ctx context.Context) error {
		return e.Transaction(ctx, func(ctx context.Context) error {
			return insert(ctx, e, table, "a child")
		}, sp)
	})
	if err != nil {
		t.Fatalf("block inside the open block: %v", err)
	}
	if err := a.Commit(aCtx); err != nil {
		t.Fatal(err)
	}
	// Once a ended, a new block opens at the root again.
	err = e.Transaction(ctx, func(ctx context.Context) error { return insert(ctx, e, table, "b") }, sp)
	if err != nil {
		t.Fatalf("block after the sibling ended: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	assertRows(t, e, table, "a", "a child", "b")
}

// A savepoint block that cannot be rolled back to its savepoint (here a
// RollbackTo by hand destroyed it) still reports rolled back, and the
// enclosing transaction becomes rollback-only: its statements fail with
// ErrTransactionDone and its Commit returns ErrCommitRolledBack, so the
// block's work is never committed.
func TestSavepointBlockThatCannotRollBackMakesTransactionRollbackOnly(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	ctx, tx, blockCtx, block := blockAfterSavepoint(t, e, table)
	if err := block.RollbackTo(blockCtx, "before"); err != nil { // destroys the block's savepoint
		t.Fatal(err)
	}
	if err := block.Rollback(blockCtx); err == nil || !block.RolledBack() {
		t.Fatalf("Rollback of a block whose savepoint is gone: %v (RolledBack %v), want an error and RolledBack", err, block.RolledBack())
	}
	if e.TransactionExists(ctx) {
		t.Error("TransactionExists true after a savepoint block could not be rolled back")
	}
	if err := insert(ctx, e, table, "after"); !errors.Is(err, piccolo.ErrTransactionDone) {
		t.Errorf("statement after the failed block rollback: %v, want ErrTransactionDone", err)
	}
	if err := tx.Commit(ctx); !errors.Is(err, piccolo.ErrCommitRolledBack) {
		t.Fatalf("Commit: %v, want ErrCommitRolledBack", err)
	}
	assertRows(t, e, table)
}

// A savepoint block opened in a transaction that PostgreSQL had already
// aborted (a statement failed) never existed: the server refused its
// SAVEPOINT (25P02). Its statements are refused, its end sends nothing for
// it (no ROLLBACK TO, no 3B001), it reports rolled back (its Commit:
// ErrCommitRolledBack with the cause) and runs its OnRollback hooks, and
// the transaction stays as the server has it: aborted, and recoverable by
// RollbackTo to a savepoint made before the failure. A Savepoint handle
// refused the same way names no savepoint: its RollbackTo gets 3B001.
func TestSavepointBlockRefusedInAbortedTransactionNeverExisted(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	for _, end := range []string{"closure error", "Commit", "Rollback"} {
		t.Run(end, func(t *testing.T) {
			table := newTable(t, e)
			ctx, tx := mustBegin(t, e)
			defer func() { _ = tx.Rollback(ctx) }()
			before := mustSavepoint(t, ctx, tx, "before")
			mustInsert(t, ctx, e, table, "undone")
			if _, err := e.Exec(ctx, piccolo.Querystring{SQL: "SELECT 1/0"}); err == nil {
				t.Fatal("SELECT 1/0 succeeded")
			}
			var hookRan atomic.Bool
			var blockErr error
			var block *piccolo.PostgresTransaction
			body := func(ctx context.Context) error {
				block = e.CurrentTransaction(ctx)
				block.OnRollback(func(context.Context) { hookRan.Store(true) })
				var pgErr *pgconn.PgError
				if err := insert(ctx, e, table, "refused"); !errors.As(err, &pgErr) || pgErr.Code != "25P02" {
					t.Errorf("first statement in the block: %v, want 25P02", err)
				}
				if err := block.RollbackTo(ctx, "before"); !errors.Is(err, piccolo.ErrTransactionDone) {
					t.Errorf("RollbackTo through the refused block: %v, want ErrTransactionDone", err)
				}
				return errBoom
			}
			nest := piccolo.Nesting(piccolo.NestSavepoint)
			if end == "closure error" {
				blockErr = e.Transaction(ctx, body, nest)
			} else {
				blockCtx, b := mustBeginIn(t, ctx, e, nest)
				_ = body(blockCtx)
				if end == "Commit" {
					blockErr = b.Commit(blockCtx)
				} else {
					blockErr = b.Rollback(blockCtx)
				}
			}
			var pgErr *pgconn.PgError
			switch {
			case end == "closure error" && !errors.Is(blockErr, errBoom),
				end == "Commit" && (!errors.Is(blockErr, piccolo.ErrCommitRolledBack) || !errors.As(blockErr, &pgErr) || pgErr.Code != "25P02"),
				end == "Rollback" && blockErr != nil,
				strings.Contains(fmt.Sprint(blockErr), "3B001"):
				t.Errorf("block's end: %v", blockErr)
			}
			if !block.RolledBack() || !hookRan.Load() {
				t.Errorf("block RolledBack %v, OnRollback ran %v; want both", block.RolledBack(), hookRan.Load())
			}
			if !e.TransactionExists(ctx) {
				t.Fatal("the transaction became rollback-only")
			}
			manual := mustSavepoint(t, ctx, tx, "")
			if err := insert(ctx, e, table, "refused too"); err == nil {
				t.Fatal("a statement in the aborted transaction succeeded")
			}
			if err := manual.RollbackTo(ctx); !errors.As(err, &pgErr) || pgErr.Code != "3B001" {
				t.Errorf("RollbackTo of a refused Savepoint handle: %v, want 3B001", err)
			}
			if err := before.RollbackTo(ctx); err != nil {
				t.Fatalf("RollbackTo a savepoint made before the failure: %v", err)
			}
			mustInsert(t, ctx, e, table, "recovered")
			if err := tx.Commit(ctx); err != nil {
				t.Fatalf("Commit: %v", err)
			}
			assertRows(t, e, table, "recovered")
		})
	}
	assertNoBorrowed(t, e)
}

// A released savepoint block's RELEASE is queued: it rides with the next
// statement, or the outermost COMMIT makes it needless. Work after it, a
// failing sibling block and the commit behave as if it had been sent at
// once.
func TestReleasedSavepointBlockReleaseRidesWithTheNextStatement(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	table := newTable(t, e)
	mustInsert(t, context.Background(), e, table, "seed")
	sp := piccolo.Nesting(piccolo.NestSavepoint)
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		if err := e.Transaction(ctx, func(ctx context.Context) error { return insert(ctx, e, table, "a") }, sp); err != nil {
			return err
		}
		if err := insert(ctx, e, table, "b"); err != nil { // RELEASE rides with it
			return err
		}
		if err := e.Transaction(ctx, func(ctx context.Context) error { return insert(ctx, e, table, "seed") }, sp); err == nil {
			return errors.New("a duplicate INSERT in a savepoint block succeeded")
		}
		if err := insert(ctx, e, table, "c"); err != nil {
			return err
		}
		// Released, then the COMMIT: its RELEASE is never sent.
		return e.Transaction(ctx, func(ctx context.Context) error { return insert(ctx, e, table, "d") }, sp)
	})
	if err != nil {
		t.Fatal(err)
	}
	assertRows(t, e, table, "seed", "a", "b", "c", "d")
}

// A savepoint block whose savepoint a statement by hand destroyed (a
// RollbackTo, or the same in SQL, to a savepoint made before the block)
// sends its RELEASE at once on Commit: it fails there, the Commit returns
// ErrCommitRolledBack and the transaction becomes rollback-only, as rule 5
// says; the failure never waits for a later statement.
func TestSavepointBlockCommitAfterItsSavepointWasDestroyedRollsBack(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	for _, byHand := range []struct {
		name string
		run  func(ctx context.Context, block *piccolo.PostgresTransaction) error
	}{
		{"RollbackTo", func(ctx context.Context, block *piccolo.PostgresTransaction) error {
			return block.RollbackTo(ctx, "before")
		}},
		{"SQL", func(ctx context.Context, _ *piccolo.PostgresTransaction) error {
			_, err := e.Exec(ctx, piccolo.Querystring{SQL: "ROLLBACK TO SAVEPOINT before"})
			return err
		}},
	} {
		t.Run(byHand.name, func(t *testing.T) {
			table := newTable(t, e)
			ctx, tx, blockCtx, block := blockAfterSavepoint(t, e, table)
			if err := byHand.run(blockCtx, block); err != nil { // destroys the block's savepoint
				t.Fatal(err)
			}
			if err := block.Commit(blockCtx); !errors.Is(err, piccolo.ErrCommitRolledBack) || !block.RolledBack() {
				t.Fatalf("Commit of a block whose savepoint is gone: %v (RolledBack %v), want ErrCommitRolledBack", err, block.RolledBack())
			}
			if err := tx.Commit(ctx); !errors.Is(err, piccolo.ErrCommitRolledBack) {
				t.Fatalf("Commit: %v, want ErrCommitRolledBack", err)
			}
			assertRows(t, e, table)
		})
	}
}

// blockAfterSavepoint begins a transaction that inserts "outer", makes the
// savepoint "before", and opens a savepoint block that inserts "inner".
func blockAfterSavepoint(t *testing.T, e *piccolo.PostgresEngine, table string) (context.Context, *piccolo.PostgresTransaction, context.Context, *piccolo.PostgresTransaction) {
	t.Helper()
	ctx, tx := mustBegin(t, e)
	mustInsert(t, ctx, e, table, "outer")
	mustSavepoint(t, ctx, tx, "before")
	blockCtx, block := mustBeginIn(t, ctx, e, piccolo.Nesting(piccolo.NestSavepoint))
	mustInsert(t, blockCtx, e, table, "inner")
	return ctx, tx, blockCtx, block
}
