package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/piccolo-go/piccolo"
)

// Leaving an All loop by a panic closes the batch and gives its
// connection back.
func TestBatchAllClosesWhenTheLoopPanics(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	b, err := e.Batch(context.Background(), seriesQuery(100), piccolo.BatchSize(10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) }) // runs before e.Close
	func() {
		defer func() { _ = recover() }()
		for range b.All(context.Background()) {
			panic("loop body")
		}
	}()
	assertNoBorrowed(t, e)
}

// Cursors on one connection get unique names, so a later batch whose
// columns have other types never meets a stale cached description.
func TestBatchCursorNamesAreUniqueOnAConnection(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{MaxConns: 1})
	ctx := context.Background()
	for i, q := range []piccolo.Query{
		piccolo.Raw("SELECT g::int AS x FROM generate_series(1, 3) g"),
		piccolo.Raw("SELECT 'v' || g AS x FROM generate_series(1, 3) g"),
		piccolo.Raw("SELECT g::float8 AS x FROM generate_series(1, 3) g"),
	} {
		b, err := e.Batch(ctx, q, piccolo.BatchSize(2))
		if err != nil {
			t.Fatal(err)
		}
		var got []any
		for rows, err := range b.All(ctx) {
			if err != nil {
				t.Fatalf("batch %d: %v", i, err)
			}
			for _, r := range rows {
				got = append(got, r["x"])
			}
		}
		if len(got) != 3 || fmt.Sprintf("%T", got[0]) != []string{"int32", "string", "float64"}[i] {
			t.Fatalf("batch %d read %v", i, got)
		}
	}
	assertNoBorrowed(t, e)
}

func TestBatchCloseAndEarlyBreak(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	ctx := context.Background()

	b, err := e.Batch(ctx, seriesQuery(100), piccolo.BatchSize(10))
	if err != nil {
		t.Fatal(err)
	}
	for rows, err := range b.All(ctx) {
		if err != nil || len(rows) != 10 {
			t.Fatalf("first batch: %d rows, %v", len(rows), err)
		}
		break
	}
	assertNoBorrowed(t, e)
	if _, err := b.Next(ctx); !errors.Is(err, piccolo.ErrBatchClosed) {
		t.Fatalf("Next after an early break: %v, want ErrBatchClosed", err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close is idempotent: %v", err)
	}

	b, err = e.Batch(ctx, seriesQuery(100), piccolo.BatchSize(10))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Next(ctx); !errors.Is(err, piccolo.ErrBatchClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	assertNoBorrowed(t, e)
}

func TestBatchCancelledMidStream(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, err := e.Batch(ctx, seriesQuery(1000), piccolo.BatchSize(10))
	if err != nil {
		t.Fatal(err)
	}
	var gotErr error
	batches := 0
	for _, err := range b.All(ctx) {
		if err != nil {
			gotErr = err
			break
		}
		batches++
		if batches == 2 {
			cancel()
		}
	}
	if !errors.Is(gotErr, context.Canceled) || batches != 2 {
		t.Fatalf("after cancel: %d batches, err %v", batches, gotErr)
	}
	assertNoBorrowed(t, e)
	if got := scalar[int32](t, context.Background(), e, "SELECT 1::int4"); got != 1 {
		t.Fatal("pool unusable after a cancelled batch")
	}
}

func TestBatchNeverClosedIsReclaimed(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	e := newEngine(t, true, piccolo.PostgresConfig{Logger: logger})
	ctx := context.Background()
	func() {
		b, err := e.Batch(ctx, seriesQuery(100), piccolo.BatchSize(10))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Next(ctx); err != nil {
			t.Fatal(err)
		}
		// Dropped here without Close.
	}()
	deadline := time.Now().Add(5 * time.Second)
	for e.Stat().AcquiredConns() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the connection of a batch that was never closed was not reclaimed")
		}
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "never closed") {
		t.Fatalf("no warning about the leaked batch:\n%s", logs)
	}
}

// Rule: Batch's context bounds its opening only (BEGIN and DECLARE): the
// first FETCH, sent with them, is read under the first Next's context, so
// Batch's context ending once Batch returned cancels nothing, whatever
// pgx's context watcher does (here one that sends a CancelRequest).
func TestBatchContextBoundsOnlyItsOpening(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{Configure: func(c *pgxpool.Config) {
		c.ConnConfig.BuildContextWatcherHandler = func(pg *pgconn.PgConn) ctxwatch.Handler {
			return &pgconn.CancelRequestContextWatcherHandler{Conn: pg, DeadlineDelay: time.Second}
		}
	}})
	ctx := context.Background()
	slow := piccolo.Raw("SELECT pg_sleep(0.2), g FROM generate_series(1, 3) g")
	if _, err := e.RunQuerystring(ctx, slow); err != nil { // described: the next Batch rides
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	b, err := e.Batch(short, slow, piccolo.BatchSize(10))
	if err != nil {
		t.Fatalf("Batch: %v", err)
	}
	<-short.Done() // while the first FETCH runs
	if rows, err := b.Next(ctx); err != nil || len(rows) != 3 {
		t.Fatalf("the first Next under a live context, after Batch's ended: %v, %v", rows, err)
	}
	assertNoBorrowed(t, e)
}

// Rule: a call of a Batch's Next, NextFunc or Close from a scan callback
// of the batch's transaction (its own NextFunc callback, say) returns
// ErrConnBusy at once instead of waiting for ever on the batch the callback
// runs inside; the batch goes on, in its own transaction or the caller's.
func TestBatchCallsFromItsOwnScanCallbackAreBusy(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	ctx := context.Background()
	read := func(ctx context.Context) error {
		b, err := e.Batch(ctx, seriesQuery(5), piccolo.BatchSize(2))
		if err != nil {
			return err
		}
		seen := 0
		err = nextFuncToEnd(ctx, b, func(pgx.Rows) error {
			seen++
			if _, err := b.Next(ctx); !errors.Is(err, piccolo.ErrConnBusy) {
				return fmt.Errorf("Next from the batch's callback: %v, want ErrConnBusy", err)
			}
			if err := b.Close(ctx); !errors.Is(err, piccolo.ErrConnBusy) {
				return fmt.Errorf("Close from the batch's callback: %v, want ErrConnBusy", err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if seen != 5 {
			return fmt.Errorf("the batch read %d rows, want 5", seen)
		}
		return nil
	}
	if err := read(ctx); err != nil {
		t.Fatalf("a batch of its own: %v", err)
	}
	if err := e.Transaction(ctx, read); err != nil {
		t.Fatalf("a batch in the caller's transaction: %v", err)
	}
	assertNoBorrowed(t, e)
}
