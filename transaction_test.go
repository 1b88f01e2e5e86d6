package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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
			e := newEngine(t, true, piccolo.PostgresConfig{})
			table := newTable(t, e)
			err := e.Transaction(context.Background(), func(ctx context.Context) error {
				return tc.fn(ctx, e, table)
			})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Transaction: %v, want %v", err, tc.wantErr)
			}
			if got := names(t, e, table); !slices.Equal(got, tc.want) {
				t.Fatalf("rows %v, want %v", got, tc.want)
			}
			assertNoBorrowed(t, e)
		})
	}
}

func TestTransactionPanicRollsBackAndRepanics(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	table := newTable(t, e)
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
	if got := names(t, e, table); len(got) != 0 {
		t.Fatalf("rows after panic: %v", got)
	}
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
			e := newEngine(t, true, piccolo.PostgresConfig{})
			table := newTable(t, e)
			ctx, tx, err := e.Begin(context.Background())
			if err != nil {
				t.Fatal(err)
			}
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
			if got := names(t, e, table); !slices.Equal(got, want) {
				t.Fatalf("rows %v, want %v", got, want)
			}
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
	logger, logs := newLogger()
	e := newEngine(t, true, piccolo.PostgresConfig{LogQueries: true, Logger: logger})
	if err := e.Transaction(context.Background(), func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "BEGIN") || strings.Contains(logs.String(), "COMMIT") {
		t.Fatalf("an empty transaction sent statements:\n%s", logs)
	}
}

func TestNestJoin(t *testing.T) {
	t.Parallel()
	t.Run("inner commit does nothing, outer decides", func(t *testing.T) {
		t.Parallel()
		e := newEngine(t, true, piccolo.PostgresConfig{})
		table := newTable(t, e)
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
		if got := names(t, e, table); len(got) != 0 {
			t.Fatalf("joined block's row survived the outer rollback: %v", got)
		}
	})
	for _, failure := range []string{"error", "panic", "rollback"} {
		t.Run("inner "+failure+" makes the transaction rollback-only", func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, true, piccolo.PostgresConfig{})
			table := newTable(t, e)
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
			if got := names(t, e, table); len(got) != 0 {
				t.Fatalf("half of the transaction was committed: %v", got)
			}
			if committed.Load() {
				t.Fatal("OnCommit ran for a transaction that rolled back")
			}
			assertNoBorrowed(t, e)
		})
	}
}

func TestNestRefuse(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	e := newEngine(t, true, piccolo.PostgresConfig{LogQueries: true, Logger: logger})
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
	e := newEngine(t, true, piccolo.PostgresConfig{})
	table := newTable(t, e)
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
	if got, want := names(t, e, table), []string{"outer", "kept", "level2"}; !slices.Equal(got, want) {
		t.Fatalf("rows %v, want %v", got, want)
	}
	if want := []string{"inner rolled back", "kept"}; !slices.Equal(hooks, want) {
		t.Fatalf("hooks ran: %v, want %v", hooks, want)
	}
}

func TestBeginNesting(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	table := newTable(t, e)
	ctx, outer, err := e.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer outer.Rollback(ctx)
	mustInsert(t, ctx, e, table, "outer")

	spCtx, sp, err := e.Begin(ctx, piccolo.Nesting(piccolo.NestSavepoint))
	if err != nil {
		t.Fatal(err)
	}
	mustInsert(t, spCtx, e, table, "inner")
	if err := sp.Rollback(spCtx); err != nil {
		t.Fatal(err)
	}
	if err := insert(spCtx, e, table, "x"); !errors.Is(err, piccolo.ErrTransactionDone) {
		t.Fatalf("statement through a rolled-back savepoint block: %v", err)
	}
	joinCtx, joined, err := e.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
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
	if got, want := names(t, e, table), []string{"outer", "joined"}; !slices.Equal(got, want) {
		t.Fatalf("rows %v, want %v", got, want)
	}
}

func TestIsolationAndReadOnly(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	table := newTable(t, e)
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

func TestGoroutinesShareATransaction(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	table := newTable(t, e)
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for i := range 20 {
			wg.Go(func() { errs <- insert(ctx, e, table, fmt.Sprint(i)) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("goroutines sharing a transaction: %v", err)
	}
	if got := names(t, e, table); len(got) != 20 {
		t.Fatalf("%d rows, want 20", len(got))
	}
}

func TestHooks(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	table := newTable(t, e)
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
	ctx, tx, err := e.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	mustInsert(t, ctx, e, table, "a")
	pid := scalar[int32](t, ctx, e, "SELECT pg_backend_pid()")
	if !scalar[bool](t, context.Background(), killer, "SELECT pg_terminate_backend($1)", pid) {
		t.Fatal("could not terminate the backend")
	}
	err = tx.Commit(ctx)
	if !errors.Is(err, piccolo.ErrAmbiguousCommit) && !errors.Is(err, piccolo.ErrCommitRolledBack) {
		t.Fatalf("commit on a dead connection: %v", err)
	}
	if tx.Committed() {
		t.Fatal("a dead connection's transaction reports committed")
	}
	if got := names(t, e, table); len(got) != 0 {
		t.Fatalf("rows %v", got)
	}
	assertNoBorrowed(t, e)
	// The pool replaced the connection.
	mustInsert(t, context.Background(), e, table, "b")
}

func TestRetryOnSerializationFailure(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	table := newTable(t, e)
	ctx := context.Background()
	mustInsert(t, ctx, e, table, "counter")

	// Two goroutines read-modify-write the same row under SERIALIZABLE; a
	// barrier makes both read before either writes, so one must fail with
	// 40001 on its first attempt and win on a retry.
	var attempts atomic.Int32
	barrier := make(chan struct{})
	var once sync.Once
	var ready sync.WaitGroup
	ready.Add(2)
	increment := func() error {
		first := true
		return e.Transaction(ctx, func(ctx context.Context) error {
			attempts.Add(1)
			n := scalar[int32](t, ctx, e, "SELECT n FROM "+table+" WHERE name = 'counter'")
			if first {
				first = false
				ready.Done()
				once.Do(func() { go func() { ready.Wait(); close(barrier) }() })
				<-barrier
			}
			_, err := e.Exec(ctx, piccolo.Querystring{SQL: "UPDATE " + table + " SET n = $1 WHERE name = 'counter'", Args: []any{n + 1}})
			return err
		}, piccolo.Isolation(piccolo.Serializable), piccolo.Retry(5))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() { errs <- increment() })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("increment: %v", err)
		}
	}
	if n := scalar[int32](t, ctx, e, "SELECT n FROM "+table+" WHERE name = 'counter'"); n != 2 {
		t.Fatalf("counter = %d, want 2: an increment was lost", n)
	}
	if a := attempts.Load(); a < 3 {
		t.Fatalf("%d attempts: the conflict did not happen or was not retried", a)
	}
}

func TestRetryLimits(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	serializationFailure := &pgconn.PgError{Code: "40001", Message: "could not serialize"}
	ctx := context.Background()

	var calls int
	err := e.Transaction(ctx, func(context.Context) error {
		calls++
		return serializationFailure
	}, piccolo.Retry(3))
	if calls != 3 || !errors.Is(err, serializationFailure) || !strings.Contains(err.Error(), "3 attempts") {
		t.Fatalf("%d calls, err %v; want 3 attempts ending in the 40001", calls, err)
	}

	calls = 0
	err = e.Transaction(ctx, func(context.Context) error { calls++; return errBoom }, piccolo.Retry(3))
	if calls != 1 || !errors.Is(err, errBoom) {
		t.Fatalf("a non-retryable error ran %d times: %v", calls, err)
	}

	calls = 0
	_ = e.Transaction(ctx, func(ctx context.Context) error {
		return e.Transaction(ctx, func(context.Context) error { calls++; return serializationFailure }, piccolo.Retry(3))
	})
	if calls != 1 {
		t.Fatalf("a joined block was retried %d times; retry is for the outermost transaction", calls)
	}
	if err := e.Transaction(ctx, func(context.Context) error { return nil }, piccolo.Retry(0)); err == nil {
		t.Fatal("Retry(0) accepted")
	}
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
		ctx, tx, err := e.Begin(bg)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
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
		ctx, tx, err := e.Begin(bg)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
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

// A scan callback runs while its transaction's connection is held: a
// statement or a Commit it sends through that same transaction fails at
// once with ErrConnBusy instead of hanging, while hooks and nested blocks
// (bookkeeping, no I/O) work. QueryFunc and Batch.NextFunc alike.
func TestScanCallbackCannotRunStatementsInItsTransaction(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	table := newTable(t, e)
	var hooks atomic.Int32
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		tx := e.CurrentTransaction(ctx)
		callback := func(pgx.Rows) error {
			start := time.Now()
			if err := insert(ctx, e, table, "from the callback"); !errors.Is(err, piccolo.ErrConnBusy) {
				t.Errorf("statement from a scan callback: %v, want ErrConnBusy", err)
			}
			if err := tx.Commit(ctx); !errors.Is(err, piccolo.ErrConnBusy) {
				t.Errorf("Commit from a scan callback: %v, want ErrConnBusy", err)
			}
			tx.OnCommit(func(context.Context) { hooks.Add(1) })
			if !e.TransactionExists(ctx) {
				t.Error("TransactionExists false in a scan callback")
			}
			if err := e.Transaction(ctx, func(context.Context) error { return nil }, piccolo.Nesting(piccolo.NestSavepoint)); err != nil {
				t.Errorf("empty savepoint block from a scan callback: %v", err)
			}
			err := e.Transaction(ctx, func(ctx context.Context) error {
				return insert(ctx, e, table, "from a block in the callback")
			}, piccolo.Nesting(piccolo.NestSavepoint))
			if !errors.Is(err, piccolo.ErrConnBusy) {
				t.Errorf("statement in a savepoint block from a scan callback: %v, want ErrConnBusy", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("the callback's calls took %v", d)
			}
			return nil
		}
		if err := e.QueryFunc(ctx, piccolo.Querystring{SQL: "SELECT 1"}, callback); err != nil {
			return err
		}
		b, err := e.Batch(ctx, seriesQuery(1))
		if err != nil {
			return err
		}
		if _, err := b.NextFunc(ctx, callback); err != nil {
			return err
		}
		if err := b.Close(ctx); err != nil {
			return err
		}
		return insert(ctx, e, table, "after")
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(t, e, table), []string{"after"}; !slices.Equal(got, want) {
		t.Fatalf("rows %v, want %v", got, want)
	}
	if hooks.Load() != 2 {
		t.Fatalf("%d OnCommit hooks registered in scan callbacks ran, want 2", hooks.Load())
	}
}

// While a scan callback runs, another goroutine's statement in the same
// transaction waits for the connection and then succeeds.
func TestScanCallbackMakesOtherGoroutinesWait(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	table := newTable(t, e)
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		done := make(chan error, 1)
		err := e.QueryFunc(ctx, piccolo.Querystring{SQL: "SELECT 1"}, func(pgx.Rows) error {
			go func() { done <- insert(ctx, e, table, "other goroutine") }()
			select {
			case err := <-done:
				t.Errorf("another goroutine's statement ran during the callback: %v", err)
			case <-time.After(300 * time.Millisecond):
			}
			return nil
		})
		if err != nil {
			return err
		}
		return <-done
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(t, e, table), []string{"other goroutine"}; !slices.Equal(got, want) {
		t.Fatalf("rows %v, want %v", got, want)
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
	ctx, tx, err := e.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
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
