package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
)

var errBoom = errors.New("boom")

func TestTransactionRunsOnOneConnection(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		a := scalar[int64](t, ctx, e, "SELECT txid_current()")
		b := scalar[int64](t, ctx, e, "SELECT txid_current()")
		if a != b {
			t.Errorf("txid %d then %d: the statements ran in different transactions", a, b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTransactionOutcome(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		fn      func(ctx context.Context, e *piccolo.PostgresEngine, table string) error
		wantErr error
		want    []string
	}{
		{
			name: "nil commits",
			fn: func(ctx context.Context, e *piccolo.PostgresEngine, table string) error {
				return insert(ctx, e, table, "a")
			},
			want: []string{"a"},
		},
		{
			name: "error rolls back and comes back wrapped",
			fn: func(ctx context.Context, e *piccolo.PostgresEngine, table string) error {
				if err := insert(ctx, e, table, "a"); err != nil {
					return err
				}
				return fmt.Errorf("giving up: %w", errBoom)
			},
			wantErr: errBoom,
			want:    []string{},
		},
		{
			name: "manual commit is honoured once",
			fn: func(ctx context.Context, e *piccolo.PostgresEngine, table string) error {
				if err := insert(ctx, e, table, "a"); err != nil {
					return err
				}
				return e.CurrentTransaction(ctx).Commit(ctx)
			},
			want: []string{"a"},
		},
		{
			name: "manual rollback is honoured",
			fn: func(ctx context.Context, e *piccolo.PostgresEngine, table string) error {
				if err := insert(ctx, e, table, "a"); err != nil {
					return err
				}
				return e.CurrentTransaction(ctx).Rollback(ctx)
			},
			want: []string{},
		},
		{
			name: "swallowed error turns commit into ErrCommitRolledBack",
			fn: func(ctx context.Context, e *piccolo.PostgresEngine, table string) error {
				if err := insert(ctx, e, table, "a"); err != nil {
					return err
				}
				_ = insert(ctx, e, table, "a") // unique violation, ignored
				return nil
			},
			wantErr: piccolo.ErrCommitRolledBack,
			want:    []string{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, table := pooledTable(t)
			err := e.Transaction(context.Background(), func(ctx context.Context) error {
				return tc.fn(ctx, e, table)
			})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Transaction: %v, want %v", err, tc.wantErr)
			}
			assertRows(t, e, table, tc.want...)
			assertNoBorrowed(t, e)
		})
	}
}

func TestTransactionPanicRollsBackAndRepanics(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	var rolledBack atomic.Bool
	func() {
		defer func() {
			if p := recover(); p != "kaboom" {
				t.Fatalf("recovered %v, want the closure's panic", p)
			}
		}()
		_ = e.Transaction(context.Background(), func(ctx context.Context) error {
			e.CurrentTransaction(ctx).OnRollback(func(context.Context) { rolledBack.Store(true) })
			mustInsert(t, ctx, e, table, "a")
			panic("kaboom")
		})
	}()
	assertRows(t, e, table) // nothing after a panic
	if !rolledBack.Load() {
		t.Fatal("OnRollback hook did not run after the panic")
	}
	assertNoBorrowed(t, e)
}

func TestFinishedTransactionRefusesStatements(t *testing.T) {
	t.Parallel()
	for _, finish := range []string{"commit", "rollback"} {
		t.Run(finish, func(t *testing.T) {
			t.Parallel()
			e, table := pooledTable(t)
			ctx, tx := mustBegin(t, e)
			var err error
			mustInsert(t, ctx, e, table, "a")
			if finish == "commit" {
				err = tx.Commit(ctx)
			} else {
				err = tx.Rollback(ctx)
			}
			if err != nil {
				t.Fatal(err)
			}
			if tx.Committed() != (finish == "commit") || tx.RolledBack() != (finish == "rollback") {
				t.Fatalf("Committed %v RolledBack %v after %s", tx.Committed(), tx.RolledBack(), finish)
			}
			// Never in autocommit: the statement is refused, not run.
			if err := insert(ctx, e, table, "b"); !errors.Is(err, piccolo.ErrTransactionDone) {
				t.Fatalf("insert after %s: %v", finish, err)
			}
			if _, err := e.Batch(ctx, piccolo.Raw("SELECT 1")); !errors.Is(err, piccolo.ErrTransactionDone) {
				t.Fatalf("batch after %s: %v", finish, err)
			}
			if err := e.Transaction(ctx, func(context.Context) error { return nil }); !errors.Is(err, piccolo.ErrTransactionDone) {
				t.Fatalf("nested transaction after %s: %v", finish, err)
			}
			if err := tx.Commit(ctx); !errors.Is(err, piccolo.ErrTransactionDone) {
				t.Fatalf("second commit: %v", err)
			}
			if err := tx.Rollback(ctx); !errors.Is(err, piccolo.ErrTransactionDone) {
				t.Fatalf("rollback after %s: %v", finish, err)
			}
			if e.TransactionExists(ctx) || e.CurrentTransaction(ctx) != tx {
				t.Fatal("a finished transaction still exists, or its handle is gone")
			}
			want := []string{}
			if finish == "commit" {
				want = []string{"a"}
			}
			assertRows(t, e, table, want...)
			assertNoBorrowed(t, e)
		})
	}
}

func TestTransactionExists(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	other := newEngine(t, true, piccolo.PostgresConfig{})
	ctx := context.Background()
	if e.TransactionExists(ctx) || e.CurrentTransaction(ctx) != nil {
		t.Fatal("transaction outside a transaction")
	}
	err := e.Transaction(ctx, func(ctx context.Context) error {
		if !e.TransactionExists(ctx) {
			t.Error("TransactionExists false inside")
		}
		if other.TransactionExists(ctx) {
			t.Error("a transaction of one engine is visible to another")
		}
		tx := e.CurrentTransaction(ctx)
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		if e.TransactionExists(ctx) || e.CurrentTransaction(ctx) != tx || !tx.Committed() {
			t.Error("after a manual commit: want the finished handle and TransactionExists false")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestEmptyTransactionSendsNothing(t *testing.T) {
	t.Parallel()
	e, logs := loggedEngine(t)
	if err := e.Transaction(context.Background(), func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "BEGIN") || strings.Contains(logs.String(), "COMMIT") {
		t.Fatalf("an empty transaction sent statements:\n%s", logs)
	}
}

func TestIsolationAndReadOnly(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	for _, level := range []piccolo.IsoLevel{piccolo.ReadCommitted, piccolo.RepeatableRead, piccolo.Serializable} {
		err := e.Transaction(context.Background(), func(ctx context.Context) error {
			if got := scalar[string](t, ctx, e, "SHOW transaction_isolation"); got != string(level) {
				t.Errorf("isolation %q, want %q", got, level)
			}
			return nil
		}, piccolo.Isolation(level))
		if err != nil {
			t.Fatal(err)
		}
	}
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		return insert(ctx, e, table, "a")
	}, piccolo.ReadOnly())
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "25006" {
		t.Fatalf("write in a read-only transaction: %v, want 25006", err)
	}
	if err := e.Transaction(context.Background(), func(context.Context) error { return nil }, piccolo.Isolation("chaos")); err == nil {
		t.Fatal("unknown isolation level accepted")
	}
}

func TestDeferredConstraintFailsAtCommit(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	parent := newTable(t, e)
	child := strings.TrimSuffix(parent, `"`) + `_child"`
	ctx := context.Background()
	if err := e.RunDDL(ctx, "CREATE TABLE "+child+" (pid int REFERENCES "+parent+"(id) DEFERRABLE INITIALLY DEFERRED)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.RunDDL(context.Background(), "DROP TABLE "+child) })
	err := e.Transaction(ctx, func(ctx context.Context) error {
		_, err := e.Exec(ctx, piccolo.Querystring{SQL: "INSERT INTO " + child + " VALUES (424242)"})
		return err
	})
	var pgErr *pgconn.PgError
	if !errors.Is(err, piccolo.ErrCommitRolledBack) || !errors.As(err, &pgErr) || pgErr.Code != "23503" {
		t.Fatalf("deferred FK violation at commit: %v", err)
	}
	if n := scalar[int64](t, ctx, e, "SELECT count(*) FROM "+child); n != 0 {
		t.Fatalf("%d rows committed", n)
	}
	assertNoBorrowed(t, e)
}

func TestCommitOnDeadConnection(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	killer := newEngine(t, false, piccolo.PostgresConfig{})
	table := newTable(t, e)
	ctx, tx := mustBegin(t, e)
	mustInsert(t, ctx, e, table, "a")
	pid := scalar[int32](t, ctx, e, "SELECT pg_backend_pid()")
	if !scalar[bool](t, context.Background(), killer, "SELECT pg_terminate_backend($1)", pid) {
		t.Fatal("could not terminate the backend")
	}
	err := tx.Commit(ctx)
	if !errors.Is(err, piccolo.ErrAmbiguousCommit) && !errors.Is(err, piccolo.ErrCommitRolledBack) {
		t.Fatalf("commit on a dead connection: %v", err)
	}
	if tx.Committed() {
		t.Fatal("a dead connection's transaction reports committed")
	}
	assertRows(t, e, table)
	assertNoBorrowed(t, e)
	// The pool replaced the connection.
	mustInsert(t, context.Background(), e, table, "b")
}

// TransactionExists says whether statements can run through the context:
// false for a rollback-only transaction (a joined block failed) and for
// one that a COMMIT sent as SQL ended. It answers at once, even while
// another goroutine runs a statement in the transaction.
func TestTransactionExistsSaysWhetherStatementsCanRun(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	bg := context.Background()
	t.Run("rollback-only", func(t *testing.T) {
		ctx, _ := mustBegin(t, e)
		_ = e.Transaction(ctx, func(context.Context) error { return errBoom }) // joined: marks rollback-only
		_, stmtErr := e.Exec(ctx, piccolo.Querystring{SQL: "SELECT 1"})
		if !errors.Is(stmtErr, piccolo.ErrTransactionDone) {
			t.Fatalf("statement in a rollback-only transaction: %v", stmtErr)
		}
		if e.TransactionExists(ctx) {
			t.Fatal("TransactionExists true for a rollback-only transaction")
		}
	})
	t.Run("COMMIT sent as SQL is refused", func(t *testing.T) {
		ctx, _ := mustBegin(t, e)
		if _, err := e.Exec(ctx, piccolo.Querystring{SQL: "SELECT 1"}); err != nil {
			t.Fatal(err)
		}
		// The engine refuses it (TestTransactionRefusesTransactionControlSQL):
		// the transaction goes on and statements can still run.
		if _, err := e.Exec(ctx, piccolo.Querystring{SQL: "COMMIT"}); !errors.Is(err, piccolo.ErrTransactionControl) {
			t.Fatalf("COMMIT as SQL: %v, want ErrTransactionControl", err)
		}
		if !e.TransactionExists(ctx) {
			t.Fatal("TransactionExists false although the refused COMMIT left the transaction usable")
		}
	})
	t.Run("does not wait for a running statement", func(t *testing.T) {
		const probe = "SELECT pg_sleep(1) AS exists_probe"
		err := e.Transaction(bg, func(ctx context.Context) error {
			done := make(chan error, 1)
			go func() {
				_, err := e.Exec(ctx, piccolo.Querystring{SQL: probe})
				done <- err
			}()
			// The statement holds the connection once the server runs it.
			eventually(t, "the statement running", func() error {
				if n := scalar[int64](t, bg, e, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = $1", probe); n != 1 {
					return fmt.Errorf("%d backends run it", n)
				}
				return nil
			})
			start := time.Now()
			exists := e.TransactionExists(ctx)
			if d := time.Since(start); d > 200*time.Millisecond || !exists {
				t.Errorf("TransactionExists during another goroutine's statement: %v after %v", exists, d)
			}
			return <-done
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// runtime.Goexit inside a Transaction closure (t.FailNow in a helper)
// rolls back, runs OnRollback hooks and releases the connection.
func TestGoexitInClosureRollsBack(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	var rolledBack atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.Transaction(context.Background(), func(ctx context.Context) error {
			e.CurrentTransaction(ctx).OnRollback(func(context.Context) { rolledBack.Store(true) })
			if err := insert(ctx, e, table, "a"); err != nil {
				return err
			}
			runtime.Goexit()
			return nil
		})
	}()
	<-done
	if got := names(t, e, table); len(got) != 0 || !rolledBack.Load() {
		t.Fatalf("after Goexit: rows %v, rollback hook ran %v", got, rolledBack.Load())
	}
	assertNoBorrowed(t, e)
}
