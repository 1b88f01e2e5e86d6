package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/piccolo-go/piccolo"
)

// An OnCommit hook can run queries and transactions with the context it
// is handed, however the transaction ended (Begin and Commit, a closure,
// a Commit by hand inside a closure): that context carries no finished
// transaction.
func TestOnCommitHookCanRunQueries(t *testing.T) {
	t.Parallel()
	for _, form := range []string{"begin", "manual commit in closure", "closure"} {
		t.Run(form, func(t *testing.T) {
			t.Parallel()
			e, table := pooledTable(t)
			hookErr := errors.New("hook did not run")
			hook := func(ctx context.Context) {
				hookErr = e.Transaction(ctx, func(ctx context.Context) error {
					return insert(ctx, e, table, "from hook")
				})
			}
			switch form {
			case "begin":
				ctx, tx := mustBegin(t, e)
				tx.OnCommit(hook)
				mustInsert(t, ctx, e, table, "a")
				if err := tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}
			default:
				err := e.Transaction(context.Background(), func(ctx context.Context) error {
					e.CurrentTransaction(ctx).OnCommit(hook)
					mustInsert(t, ctx, e, table, "a")
					if form == "manual commit in closure" {
						return e.CurrentTransaction(ctx).Commit(ctx)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			if hookErr != nil {
				t.Fatalf("query in OnCommit hook: %v", hookErr)
			}
			assertRows(t, e, table, "a", "from hook")
		})
	}
}

// OnCommit registered on a transaction that has committed runs at once:
// it is never dropped in silence.
func TestHookOnCommittedTransactionRunsAtOnce(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	ctx, tx := mustBegin(t, e)
	if _, err := e.Exec(ctx, piccolo.Querystring{SQL: "SELECT 1"}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var ran atomic.Bool
	tx.OnCommit(func(context.Context) { ran.Store(true) })
	if !ran.Load() {
		t.Fatal("OnCommit registered after the commit was silently dropped")
	}
}

func TestHooks(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	var commits, rollbacks atomic.Int32
	ctx := context.Background()
	err := e.Transaction(ctx, func(ctx context.Context) error {
		e.CurrentTransaction(ctx).OnCommit(nil) // ignored, not a panic at commit
		e.CurrentTransaction(ctx).OnRollback(nil)
		e.CurrentTransaction(ctx).OnCommit(func(context.Context) { commits.Add(1) })
		return e.Transaction(ctx, func(ctx context.Context) error {
			// A joined block's hook waits for the outermost commit.
			e.CurrentTransaction(ctx).OnCommit(func(context.Context) { commits.Add(1) })
			if commits.Load() != 0 {
				t.Error("hook ran before the outermost commit")
			}
			return insert(ctx, e, table, "a")
		})
	})
	if err != nil || commits.Load() != 2 || rollbacks.Load() != 0 {
		t.Fatalf("after commit: err %v, %d commit hooks, %d rollback hooks", err, commits.Load(), rollbacks.Load())
	}
	// A failed COMMIT runs the rollback hooks, not the commit hooks.
	err = e.Transaction(ctx, func(ctx context.Context) error {
		tx := e.CurrentTransaction(ctx)
		tx.OnCommit(func(context.Context) { commits.Add(1) })
		tx.OnRollback(func(context.Context) { rollbacks.Add(1) })
		_ = insert(ctx, e, table, "a") // duplicate, swallowed
		return nil
	})
	if !errors.Is(err, piccolo.ErrCommitRolledBack) || commits.Load() != 2 || rollbacks.Load() != 1 {
		t.Fatalf("after failed commit: err %v, %d commit hooks, %d rollback hooks", err, commits.Load(), rollbacks.Load())
	}
}

// Hooks run only on a known outcome: after ErrAmbiguousCommit (the
// connection died after COMMIT was sent) neither OnCommit nor OnRollback
// runs, nor does a hook registered afterwards. The caller resolves the
// outcome, here by the row the transaction wrote.
func TestHooksRunOnlyOnAKnownOutcome(t *testing.T) {
	t.Parallel()
	var armed atomic.Pointer[[]byte]
	cut := make(chan struct{}, 1)
	commit := []byte("COMMIT\x00")
	e := newEngine(t, true, piccolo.PostgresConfig{MaxConns: 2, Configure: cutConns(&armed, cut)})
	table := newTable(t, e)
	var ran atomic.Int32
	hook := func(context.Context) { ran.Add(1) }
	ctx, tx := mustBegin(t, e)
	tx.OnCommit(hook)
	tx.OnRollback(hook)
	mustInsert(t, ctx, e, table, "maybe")
	armed.Store(&commit)
	if err := tx.Commit(ctx); !errors.Is(err, piccolo.ErrAmbiguousCommit) {
		t.Fatalf("Commit: %v, want ErrAmbiguousCommit", err)
	}
	<-cut
	tx.OnCommit(hook)
	tx.OnRollback(hook)
	if ran.Load() != 0 {
		t.Fatalf("%d hooks ran after an ambiguous commit, want none", ran.Load())
	}
	// Resolving the outcome: the row is there, so it committed.
	eventually(t, "the ambiguous commit's row", func() error {
		if got := names(t, e, table); !slices.Equal(got, []string{"maybe"}) {
			return fmt.Errorf("rows %v", got)
		}
		return nil
	})
}
