package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
)

// Retry never runs the closure again after an ambiguous commit (the
// connection died before COMMIT was answered): that error is not
// retryable.
func TestRetryNeverRunsAgainAfterAnAmbiguousCommit(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	killer := newEngine(t, false, piccolo.PostgresConfig{})
	table := newTable(t, e)
	calls := 0
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		calls++
		mustInsert(t, ctx, e, table, fmt.Sprint(calls))
		pid := scalar[int32](t, ctx, e, "SELECT pg_backend_pid()")
		scalar[bool](t, context.Background(), killer, "SELECT pg_terminate_backend($1)", pid)
		return nil
	}, piccolo.Retry(3), piccolo.Isolation(piccolo.Serializable))
	if err == nil || calls != 1 || piccolo.IsRetryable(err) {
		t.Fatalf("commit on a killed connection: %v after %d calls", err, calls)
	}
	assertNoBorrowed(t, e)
}

func TestRetryOnSerializationFailure(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
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

// When Retry's attempts run out, Transaction returns a *RetryError saying
// how many attempts ran, wrapping the last failure.
func TestRetryGivesUpWithRetryError(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	conflict := &pgconn.PgError{Code: "40001", Message: "could not serialize"}
	err := e.Transaction(context.Background(), func(context.Context) error { return conflict }, piccolo.Retry(2))
	var re *piccolo.RetryError
	if !errors.As(err, &re) || re.Attempts != 2 || !errors.Is(err, conflict) {
		t.Fatalf("err %v; want a *RetryError after 2 attempts wrapping the 40001", err)
	}
	if n := strings.Count(err.Error(), "piccolo: "); n != 1 {
		t.Errorf("%q has %d piccolo prefixes, want one", err, n)
	}
}
