package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/piccolo-go/piccolo"
)

// A goroutine waiting for its transaction's connection, which another
// goroutine's statement holds, gives up when its own context ends.
func TestWaitingForTheTransactionsConnectionHonoursContext(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		waited, err := whileConnHeld(t, ctx, e, func(short context.Context) error {
			_, err := e.Exec(short, piccolo.Querystring{SQL: "SELECT 1"})
			return err
		})
		if !errors.Is(err, context.DeadlineExceeded) || waited > 700*time.Millisecond {
			t.Errorf("waited %v for the connection with a 100ms deadline (err %v)", waited, err)
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Logf("transaction: %v", err)
	}
	assertNoBorrowed(t, e)
}

// Opening a nested block needs no connection: a nested Begin does not
// wait for another goroutine's statement on the transaction.
func TestNestedBeginNeedsNoConnection(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		waited, err := whileConnHeld(t, ctx, e, func(short context.Context) error {
			_, _, err := e.Begin(short, piccolo.Nesting(piccolo.NestSavepoint))
			return err
		})
		if waited > 700*time.Millisecond {
			t.Errorf("nested Begin with a 100ms deadline waited %v (err %v)", waited, err)
		}
		return nil
	})
	if err != nil {
		t.Logf("transaction: %v", err)
	}
}

// whileConnHeld runs call with a 100ms deadline while another goroutine's
// pg_sleep holds the connection of the transaction in ctx, and returns how
// long call took and its error, once the sleeper is done.
func whileConnHeld(t *testing.T, ctx context.Context, e *piccolo.PostgresEngine, call func(short context.Context) error) (time.Duration, error) {
	t.Helper()
	var wg sync.WaitGroup
	defer wg.Wait()
	sleeper := "SELECT pg_sleep(1.5) -- " + t.Name()
	wg.Go(func() { _, _ = e.Exec(ctx, piccolo.Querystring{SQL: sleeper}) })
	waitRunning(t, e, sleeper) // the sleeper holds the connection
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := call(short)
	return time.Since(start), err
}

// Goroutines sharing a transaction (statements, hooks, savepoints,
// batches, Atomics) while another goroutine commits it: no data race, no
// panic, no ErrConnBusy, and nothing started after Commit returned
// succeeds. An Atomic (a joined block) still open at Commit makes it roll
// back.
func TestTransactionSharedByGoroutinesWhileCommitted(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	ctx, tx := mustBegin(t, e)
	var committedAt atomic.Int64
	var seq atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	// warm: every goroutine has run each operation once, or stopped.
	var warm sync.WaitGroup
	warm.Add(8)
	for g := range 8 {
		wg.Go(func() {
			var warmed sync.Once
			defer warmed.Do(warm.Done)
			for i := 0; ; i++ {
				if i == 5 {
					warmed.Do(warm.Done)
				}
				start := time.Now().UnixNano()
				var err error
				switch i % 5 {
				case 0:
					err = insert(ctx, e, table, fmt.Sprint("g", g, "_", seq.Add(1)))
				case 1:
					tx.OnCommit(func(context.Context) {})
					_ = e.TransactionExists(ctx)
					_, err = e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT $1::int AS x", Args: []any{i}})
				case 2:
					var b *piccolo.Batch
					if b, err = e.Batch(ctx, seriesQuery(30), piccolo.BatchSize(7)); err == nil {
						_, err = b.Next(ctx)
						err = errors.Join(err, b.Close(ctx))
					}
				case 3:
					err = e.Atomic().Add(piccolo.Raw("SELECT 1"), piccolo.Raw("SELECT $1::text", "x")).Run(ctx)
				case 4:
					_, err = tx.Savepoint(ctx, "")
				}
				if err != nil {
					if !errors.Is(err, piccolo.ErrTransactionDone) {
						errs <- fmt.Errorf("goroutine %d op %d: %w", g, i%5, err)
					}
					return
				}
				if at := committedAt.Load(); at != 0 && start > at {
					errs <- fmt.Errorf("goroutine %d op %d started after Commit and succeeded", g, i%5)
					return
				}
			}
		})
	}
	warm.Wait()
	// An Atomic (a joined block) still open when Commit ends the
	// transaction makes it roll back: half of it must never commit.
	if err := tx.Commit(ctx); err != nil && !errors.Is(err, piccolo.ErrCommitRolledBack) {
		t.Fatal(err)
	}
	committedAt.Store(time.Now().UnixNano())
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assertNoBorrowed(t, e)
}

// Commit with an ended context waits for the statement another goroutine
// runs in the transaction, then rolls back: the transaction ends, its
// connection goes back, nothing is committed.
func TestCommitWithEndedContextStillEndsTheTransaction(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	ctx, cancel := context.WithCancel(context.Background())
	var tx *piccolo.PostgresTransaction
	var wg sync.WaitGroup
	err := e.Transaction(ctx, func(txCtx context.Context) error {
		tx = e.CurrentTransaction(txCtx)
		mustInsert(t, txCtx, e, table, "a")
		// A worker still using the transaction (with a context of its own)
		// when the request's context is cancelled and the closure returns.
		worker := "SELECT pg_sleep(1) -- " + t.Name()
		wg.Go(func() {
			_, _ = e.Exec(context.WithoutCancel(txCtx), piccolo.Querystring{SQL: worker})
		})
		waitRunning(t, e, worker) // the worker holds the connection
		cancel()
		return nil
	})
	wg.Wait()
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) }) // let e.Close finish
	if err == nil {
		t.Fatal("commit with a cancelled context succeeded")
	}
	if !tx.Committed() && !tx.RolledBack() {
		t.Errorf("after Transaction returned %v the transaction is still active", err)
	}
	assertNoBorrowed(t, e)
	assertRows(t, e, table)
}

// A Batch read in a transaction that another goroutine commits meanwhile
// gets ErrTransactionDone or ErrBatchClosed, never hangs, and leaks no
// connection.
func TestBatchReadWhileAnotherGoroutineCommits(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	ctx, tx := mustBegin(t, e)
	b, err := e.Batch(ctx, seriesQuery(100000), piccolo.BatchSize(10))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	readErr := make(chan error, 1)
	go func() {
		var once sync.Once
		for {
			n, err := b.NextFunc(ctx, func(pgx.Rows) error { return nil })
			once.Do(func() { close(started) })
			if err != nil || n == 0 {
				readErr <- err
				return
			}
		}
	}()
	<-started
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-readErr:
		if !errors.Is(err, piccolo.ErrTransactionDone) && !errors.Is(err, piccolo.ErrBatchClosed) {
			t.Fatalf("reader after commit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reader deadlocked")
	}
	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close after the transaction ended: %v", err)
	}
	assertNoBorrowed(t, e)
}

func TestGoroutinesShareATransaction(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
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

// A scan callback runs while its transaction's connection is held: a
// statement or a Commit it sends through that same transaction fails at
// once with ErrConnBusy instead of hanging, while hooks and nested blocks
// (bookkeeping, no I/O) work. QueryFunc and Batch.NextFunc alike.
func TestScanCallbackCannotRunStatementsInItsTransaction(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
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
	assertRows(t, e, table, "after")
	if hooks.Load() != 2 {
		t.Fatalf("%d OnCommit hooks registered in scan callbacks ran, want 2", hooks.Load())
	}
}

// While a scan callback runs, another goroutine's statement in the same
// transaction waits for the connection and then succeeds.
func TestScanCallbackMakesOtherGoroutinesWait(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
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
	assertRows(t, e, table, "other goroutine")
}

// Two goroutines sharing a transaction take turns with savepoint blocks:
// a block one of them opens right as the other's released block ends keeps
// its savepoint. (The released block's RELEASE is queued in the same step
// that lets a sibling open; queued after the sibling's SAVEPOINT it would
// destroy that savepoint, and the sibling's rollback would fail with
// 3B001.) Found by TestModelConcurrent.
func TestSiblingBlockOpenedAsAReleasedBlockEndsKeepsItsSavepoint(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	ctx := context.Background()
	mustInsert(t, ctx, e, table, "taken")
	var kept atomic.Int64
	err := e.Transaction(ctx, func(ctx context.Context) error {
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for g := range 2 {
			wg.Go(func() {
				for i := 0; i < 150; i++ {
					err := e.Transaction(ctx, func(ctx context.Context) error {
						if g == 0 {
							return insert(ctx, e, table, fmt.Sprintf("g0-%d", i))
						}
						_ = insert(ctx, e, table, "taken") // fails: the block rolls back to its savepoint
						return nil
					}, piccolo.Nesting(piccolo.NestSavepoint))
					switch {
					case errors.Is(err, piccolo.ErrNestedTransaction):
						i-- // the other goroutine's block was open: take another turn
						runtime.Gosched()
					case g == 0 && err == nil:
						kept.Add(1)
					case g == 1 && errors.Is(err, piccolo.ErrCommitRolledBack):
					default:
						errs <- fmt.Errorf("goroutine %d, block %d: %w", g, i, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		var all []error
		for err := range errs {
			all = append(all, err)
		}
		return errors.Join(all...)
	})
	if err != nil {
		t.Fatalf("transaction: %v", err)
	}
	if got := len(names(t, e, table)); int64(got) != kept.Load()+1 {
		t.Fatalf("%d rows committed, want %d (every released block's row and the first)", got, kept.Load()+1)
	}
	assertNoBorrowed(t, e)
}
