package piccolo_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/piccolo-go/piccolo"
)

// Ending a block first ends its open nested blocks as rolled back, so that
// every handle reports what the server did: a savepoint child is rolled
// back to its savepoint (its OnRollback hooks run, its work is gone) and
// the ended block commits the rest; a joined child that never finished
// makes the ended block rollback-only (a joined block's half is never
// committed), so its Commit returns ErrCommitRolledBack. The child then
// reports RolledBack, and its Commit returns ErrTransactionDone.
func TestEndingABlockRollsBackItsOpenNestedBlocks(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	bg := context.Background()
	root := piccolo.NestMode(-1) // the ended block is the root
	for _, tc := range []struct {
		name          string
		ended         piccolo.NestMode // how the ended block is nested in the root
		child         piccolo.NestMode
		wantCommitErr error // of the ended block
		wantRootErr   error // of the root's Commit afterwards
		want          []string
	}{
		{"root with an open savepoint child", root, piccolo.NestSavepoint, nil, nil, []string{"root"}},
		{"root with an open joined child", root, piccolo.NestJoin, piccolo.ErrCommitRolledBack, nil, nil},
		{"savepoint block with an open savepoint child", piccolo.NestSavepoint, piccolo.NestSavepoint, nil, nil, []string{"root", "block"}},
		{"savepoint block with an open joined child", piccolo.NestSavepoint, piccolo.NestJoin, piccolo.ErrCommitRolledBack, nil, []string{"root"}},
		{"joined block with an open savepoint child", piccolo.NestJoin, piccolo.NestSavepoint, nil, nil, []string{"root", "block"}},
		{"joined block with an open joined child", piccolo.NestJoin, piccolo.NestJoin, piccolo.ErrCommitRolledBack, piccolo.ErrCommitRolledBack, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			table := newTable(t, e)
			rootCtx, rootTx := mustBegin(t, e)
			mustInsert(t, rootCtx, e, table, "root")
			endedCtx, ended := rootCtx, rootTx
			if tc.ended != root {
				endedCtx, ended = mustBeginIn(t, rootCtx, e, piccolo.Nesting(tc.ended))
				mustInsert(t, endedCtx, e, table, "block")
			}
			childCtx, child := mustBeginIn(t, endedCtx, e, piccolo.Nesting(tc.child))
			var childRolledBack atomic.Bool
			child.OnRollback(func(context.Context) { childRolledBack.Store(true) })
			mustInsert(t, childCtx, e, table, "child")

			if err := ended.Commit(endedCtx); !errors.Is(err, tc.wantCommitErr) || (err != nil) != (tc.wantCommitErr != nil) {
				t.Fatalf("Commit with an open %v child: %v, want %v", tc.child, err, tc.wantCommitErr)
			}
			if !child.RolledBack() {
				t.Error("the child does not report RolledBack")
			}
			if err := child.Commit(childCtx); !errors.Is(err, piccolo.ErrTransactionDone) {
				t.Errorf("the child's later Commit: %v, want ErrTransactionDone", err)
			}
			if tc.ended != root {
				if err := rootTx.Commit(rootCtx); !errors.Is(err, tc.wantRootErr) || (err != nil) != (tc.wantRootErr != nil) {
					t.Fatalf("root commit: %v, want %v", err, tc.wantRootErr)
				}
			}
			if !childRolledBack.Load() { // a joined child's hook runs with the root's rollback
				t.Error("the child's OnRollback hook did not run")
			}
			assertRows(t, e, table, tc.want...)
		})
	}
	// A child closure still running in another goroutine when its parent
	// commits: the parent's outcome stands, and the child's Transaction
	// returns ErrTransactionDone instead of nil.
	for _, mode := range []piccolo.NestMode{piccolo.NestSavepoint, piccolo.NestJoin} {
		t.Run(mode.String()+" closure in another goroutine", func(t *testing.T) {
			table := newTable(t, e)
			inside, release := make(chan struct{}), make(chan struct{})
			childErr := make(chan error, 1)
			err := e.Transaction(bg, func(ctx context.Context) error {
				mustInsert(t, ctx, e, table, "root")
				go func() {
					childErr <- e.Transaction(ctx, func(ctx context.Context) error {
						mustInsert(t, ctx, e, table, "child")
						close(inside)
						<-release
						return nil
					}, piccolo.Nesting(mode))
				}()
				<-inside
				return nil
			})
			close(release)
			want, wantRows := error(nil), []string{"root"}
			if mode == piccolo.NestJoin {
				want, wantRows = piccolo.ErrCommitRolledBack, nil
			}
			if !errors.Is(err, want) || (err != nil) != (want != nil) {
				t.Errorf("root: %v, want %v", err, want)
			}
			if err := <-childErr; !errors.Is(err, piccolo.ErrTransactionDone) {
				t.Errorf("child closure: %v, want ErrTransactionDone", err)
			}
			assertRows(t, e, table, wantRows...)
		})
	}
}

type hookKey struct{}

// Hooks run with the caller's context stripped of its cancellation
// (context.WithoutCancel: values kept), so a hook can run queries after a
// Commit whose context had ended, or that ended while earlier hooks ran.
func TestHooksRunWithoutTheCallersCancellation(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	for _, tc := range []struct {
		name  string
		block bool // the hook is a savepoint block's, its queries run in the outer transaction
		// commit: the caller's context is live at Commit and ended by the
		// first OnCommit hook; else it has ended before Commit, which rolls back.
		commit bool
		want   []string
	}{
		{"OnRollback after a Commit whose context ended", false, false, []string{"from the hook"}},
		{"OnCommit after the context ended during the hooks", false, true, []string{"tx", "from the hook"}},
		{"savepoint block's OnRollback after a Commit whose context ended", true, false, []string{"outer", "from the hook"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			table := newTable(t, e)
			rootCtx, root := mustBegin(t, e)
			if tc.block {
				mustInsert(t, rootCtx, e, table, "outer")
			}
			ctx, cancel := context.WithCancel(context.WithValue(rootCtx, hookKey{}, "kept"))
			defer cancel()
			ctx, tx := ctx, root
			if tc.block {
				ctx, tx = mustBeginIn(t, ctx, e, piccolo.Nesting(piccolo.NestSavepoint))
			}
			mustInsert(t, ctx, e, table, "tx")
			var hookErr error
			var value any
			hook := func(ctx context.Context) {
				value = ctx.Value(hookKey{})
				hookErr = insert(ctx, e, table, "from the hook")
			}
			if tc.commit {
				tx.OnCommit(func(context.Context) { cancel() })
				tx.OnCommit(hook)
			} else {
				tx.OnRollback(hook)
				cancel()
			}
			err := tx.Commit(ctx)
			if tc.commit != (err == nil) {
				t.Fatalf("Commit: %v", err)
			}
			if hookErr != nil || value != "kept" {
				t.Fatalf("hook: query %v, value %v; want the query to run and the value kept", hookErr, value)
			}
			if tc.block {
				if err := root.Commit(rootCtx); err != nil {
					t.Fatal(err)
				}
			}
			assertRows(t, e, table, tc.want...)
		})
	}
}

// A block whose transaction a COMMIT sent as SQL ended reports no outcome:
// its Commit returns ErrTransactionDone, it is neither Committed nor
// RolledBack, and no hook runs (here the SQL committed the block's row,
// which a rolled-back report would contradict).
func TestBlockEndedBySQLReportsNoOutcome(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	for _, mode := range []piccolo.NestMode{piccolo.NestSavepoint, piccolo.NestJoin} {
		t.Run(mode.String(), func(t *testing.T) {
			table := newTable(t, e)
			rootCtx, root := mustBegin(t, e)
			mustInsert(t, rootCtx, e, table, "root")
			ctx, block := mustBeginIn(t, rootCtx, e, piccolo.Nesting(mode))
			var hooks atomic.Int32
			for _, tx := range []*piccolo.PostgresTransaction{root, block} {
				tx.OnCommit(func(context.Context) { hooks.Add(1) })
				tx.OnRollback(func(context.Context) { hooks.Add(1) })
			}
			mustInsert(t, ctx, e, table, "block")
			// e.Exec refuses a COMMIT in a transaction; a procedure or a bypass might not.
			if err := piccolo.ExecAroundChecks(ctx, e, "COMMIT"); err != nil {
				t.Fatal(err)
			}
			for _, end := range []struct {
				name string
				tx   *piccolo.PostgresTransaction
				ctx  context.Context
			}{{"block", block, ctx}, {"root", root, rootCtx}} {
				if err := end.tx.Commit(end.ctx); !errors.Is(err, piccolo.ErrTransactionDone) {
					t.Errorf("%s Commit after a COMMIT sent as SQL: %v, want ErrTransactionDone", end.name, err)
				}
				if end.tx.Committed() || end.tx.RolledBack() {
					t.Errorf("%s: Committed %v, RolledBack %v; want neither", end.name, end.tx.Committed(), end.tx.RolledBack())
				}
			}
			if hooks.Load() != 0 {
				t.Errorf("%d hooks ran for an outcome the engine does not know", hooks.Load())
			}
			assertRows(t, e, table, "root", "block")
		})
	}
}
