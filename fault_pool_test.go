package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/piccolo-go/piccolo"
)

// acquireSignal is a tracer that says when a caller starts waiting for a
// pooled connection.
type acquireSignal struct{ started chan struct{} }

func (a *acquireSignal) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (a *acquireSignal) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (a *acquireSignal) TraceAcquireStart(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireStartData) context.Context {
	select {
	case a.started <- struct{}{}:
	default:
	}
	return ctx
}

func (a *acquireSignal) TraceAcquireEnd(context.Context, *pgxpool.Pool, pgxpool.TraceAcquireEndData) {
}

// drain forgets the acquires signalled so far.
func (a *acquireSignal) drain() {
	select {
	case <-a.started:
	default:
	}
}

// Scenario 8: an exhausted pool makes callers wait no longer than their
// context or AcquireTimeout, and serves them again once a connection comes
// back.
func TestFaultPoolExhausted(t *testing.T) {
	t.Parallel()
	bg := context.Background()
	for _, tc := range []struct {
		name    string
		timeout time.Duration // AcquireTimeout
		ctx     time.Duration // the caller's deadline
	}{
		{"context deadline", 0, 150 * time.Millisecond},
		{"AcquireTimeout", 150 * time.Millisecond, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			acquiring := &acquireSignal{started: make(chan struct{}, 1)}
			e := newEngine(t, true, piccolo.PostgresConfig{MaxConns: 2, AcquireTimeout: tc.timeout, Tracer: acquiring})
			table := newTable(t, e)
			var held []*piccolo.PostgresTransaction
			for range 2 {
				_, tx, err := e.Begin(bg)
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, tx)
			}
			wait := func(what string, call func(ctx context.Context) error) {
				t.Helper()
				ctx := bg
				if tc.ctx > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(bg, tc.ctx)
					defer cancel()
				}
				start := time.Now()
				err := call(ctx)
				if d := time.Since(start); d > 150*time.Millisecond+time.Second || d < 100*time.Millisecond {
					t.Errorf("%s on an exhausted pool returned after %v, want about 150ms", what, d)
				}
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%s on an exhausted pool: %v, want context.DeadlineExceeded", what, err)
				}
			}
			wait("query", func(ctx context.Context) error { return insert(ctx, e, table, "x") })
			wait("Begin", func(ctx context.Context) error { _, _, err := e.Begin(ctx); return err })
			wait("Transaction", func(ctx context.Context) error {
				return e.Transaction(ctx, func(context.Context) error { return nil }, piccolo.Retry(3))
			})
			wait("Batch", func(ctx context.Context) error { _, err := e.Batch(ctx, piccolo.Raw("SELECT 1")); return err })
			wait("Atomic", func(ctx context.Context) error { return e.Atomic().Add(piccolo.Raw("SELECT 1")).Run(ctx) })
			if got := e.Stat().AcquiredConns(); got != 2 {
				t.Fatalf("%d borrowed, want the 2 held", got)
			}
			// One connection back: a waiting caller gets it.
			done := make(chan error, 1)
			acquiring.drain()
			go func() { done <- insert(bg, e, table, "after release") }()
			<-acquiring.started // the caller waits for a connection
			if err := held[0].Rollback(bg); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("query waiting for a released connection: %v", err)
			}
			if err := held[1].Rollback(bg); err != nil {
				t.Fatal(err)
			}
			faultStillWorks(t, e, table)
		})
	}
}

// Scenario 8, under load: 100 goroutines x 100 operations never open more
// than MaxConns connections, as the pool and the server both see it.
func TestFaultPoolNeverExceedsMaxConns(t *testing.T) {
	t.Parallel()
	const maxConns, goroutines, ops = 4, 100, 100
	dsn, app := faultAppName(t)
	e := newEngine(t, true, piccolo.PostgresConfig{DSN: dsn, MaxConns: maxConns})
	watcher := newEngine(t, true, piccolo.PostgresConfig{MaxConns: 1})
	table := newTable(t, e)
	bg := context.Background()

	stop := make(chan struct{})
	var sampler sync.WaitGroup
	var maxPool, maxServer atomic.Int64
	sampler.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if n := int64(e.Stat().TotalConns()); n > maxPool.Load() {
				maxPool.Store(n)
			}
			if i%10 == 0 {
				if n := backends(t, watcher, app, ""); n > maxServer.Load() {
					maxServer.Store(n)
				}
			}
		}
	})
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	for g := range goroutines {
		wg.Go(func() {
			for i := range ops {
				var err error
				switch (g + i) % 10 {
				case 0:
					err = e.Transaction(bg, func(ctx context.Context) error {
						_, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT $1::int", Args: []any{i}})
						return err
					})
				case 1:
					var b *piccolo.Batch
					if b, err = e.Batch(bg, seriesQuery(3), piccolo.BatchSize(2)); err == nil {
						for _, err2 := range b.All(bg) {
							err = err2
						}
					}
				case 2:
					if i%20 == 2 {
						err = insert(bg, e, table, fmt.Sprintf("%d-%d", g, i))
					}
				default:
					_, err = e.RunQuerystring(bg, piccolo.Querystring{SQL: "SELECT $1::int", Args: []any{i}})
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d operations failed, first: %v", n, goroutines*ops, firstErr.Load())
	}
	if maxPool.Load() > maxConns || maxServer.Load() > maxConns {
		t.Fatalf("connections: pool saw %d, server saw %d, MaxConns %d", maxPool.Load(), maxServer.Load(), maxConns)
	}
	if maxServer.Load() == 0 {
		t.Fatal("the sampler never saw a backend: application_name did not reach the server")
	}
	faultStillWorks(t, e, table)
}
