package piccolo_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piccolo-go/piccolo"
)

// silentServer accepts connections and never answers, as a hung server or
// a firewall that swallows packets after the handshake does.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "postgres://postgres@" + ln.Addr().String() + "/x?sslmode=disable"
}

// TestConnectTimeoutBoundsAServerThatNeverAnswers pins that a server which
// accepts and never answers cannot hang StartConnectionPool or a query on a
// one-shot connection: ConnectTimeout (or the DSN's connect_timeout, else
// DefaultConnectTimeout) ends the attempt with an error.
func TestConnectTimeoutBoundsAServerThatNeverAnswers(t *testing.T) {
	t.Parallel()
	dsn := silentServer(t)
	for name, cfg := range map[string]piccolo.PostgresConfig{
		"ConnectTimeout":            {DSN: dsn, ConnectTimeout: 300 * time.Millisecond},
		"the DSN's connect_timeout": {DSN: dsn + "&connect_timeout=1"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e, err := piccolo.NewPostgresEngine(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			ctx := context.Background() // no deadline: only the connect timeout can end the wait
			start := time.Now()
			if err := e.StartConnectionPool(ctx); err == nil {
				t.Fatal("StartConnectionPool succeeded against a server that never answers")
			}
			if _, err := e.Exec(ctx, piccolo.Querystring{SQL: "SELECT 1"}); err == nil {
				t.Fatal("a one-shot query succeeded against a server that never answers")
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("two connection attempts took %v", took)
			}
		})
	}
	t.Run("DefaultConnectTimeout", func(t *testing.T) {
		t.Parallel()
		e, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		start := time.Now()
		if err := e.StartConnectionPool(context.Background()); err == nil {
			t.Fatal("StartConnectionPool succeeded against a server that never answers")
		}
		if took := time.Since(start); took < piccolo.DefaultConnectTimeout/2 || took > piccolo.DefaultConnectTimeout+5*time.Second {
			t.Errorf("StartConnectionPool gave up after %v, want about DefaultConnectTimeout (%v)", took, piccolo.DefaultConnectTimeout)
		}
	})
	if _, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{DSN: dsn, ConnectTimeout: -time.Second}); err == nil {
		t.Error("a negative ConnectTimeout was accepted")
	}
}

// TestRunningWithoutAPoolIsLoggedOnce pins that an engine whose pool was
// never started says so, once: each query then pays for a connection of
// its own, which is easy to miss.
func TestRunningWithoutAPoolIsLoggedOnce(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	e := newEngine(t, false, piccolo.PostgresConfig{Logger: logger})
	ctx := context.Background()
	for range 3 {
		if _, err := e.Exec(ctx, piccolo.Querystring{SQL: "SELECT 1"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "no connection pool is running"); n != 1 {
		t.Errorf("the one-shot warning was logged %d times, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "StartConnectionPool") {
		t.Errorf("the warning does not say what to do:\n%s", logs)
	}
}

// TestClosedEngineRefusesWork pins that after Close nothing runs, pooled or
// not (it used to go on with one-shot connections), while
// CloseConnectionPool keeps Piccolo's behaviour of going on without a pool.
func TestClosedEngineRefusesWork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	e.Close()
	checks := map[string]func() error{
		"Exec": func() error { _, err := e.Exec(ctx, piccolo.Querystring{SQL: "SELECT 1"}); return err },
		"Transaction": func() error {
			return e.Transaction(ctx, func(ctx context.Context) error {
				_, err := e.Exec(ctx, piccolo.Querystring{SQL: "SELECT 1"})
				return err
			})
		},
		"Batch":               func() error { _, err := e.Batch(ctx, piccolo.Raw("SELECT 1")); return err },
		"Atomic":              func() error { return e.Atomic().Add(piccolo.Raw("SELECT 1")).Run(ctx) },
		"StartConnectionPool": func() error { return e.StartConnectionPool(ctx) },
	}
	for name, check := range checks {
		if err := check(); !errors.Is(err, piccolo.ErrEngineClosed) {
			t.Errorf("%s after Close: %v, want ErrEngineClosed", name, err)
		}
	}
	e.Close() // idempotent

	open := newEngine(t, true, piccolo.PostgresConfig{})
	if err := open.CloseConnectionPool(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := open.Exec(ctx, piccolo.Querystring{SQL: "SELECT 1"}); err != nil {
		t.Errorf("after CloseConnectionPool a query should run on a one-shot connection: %v", err)
	}
}

// TestNewTransactionInAFinishedTransactionsContextSaysWhy pins that a
// context kept from inside a finished transaction, passed to a new
// Transaction, is refused with ErrTransactionDone and a message that says
// which context to use.
func TestNewTransactionInAFinishedTransactionsContextSaysWhy(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	leaked := finishedTxContext(t, e)
	err := e.Transaction(leaked, func(context.Context) error { return nil })
	if !errors.Is(err, piccolo.ErrTransactionDone) || !strings.Contains(err.Error(), "context the finished one was started with") {
		t.Errorf("Transaction with a finished transaction's context: %v; want ErrTransactionDone saying which context to use", err)
	}
}

// TestStatIsSafeWithoutAPool pins that Stat can be read at any time, as
// pool collectors do: without a pool, a snapshot of a pool that never ran
// (zeros, MaxConns the configured limit), never nil; live figures with one.
func TestStatIsSafeWithoutAPool(t *testing.T) {
	t.Parallel()
	e := newEngine(t, false, piccolo.PostgresConfig{MaxConns: 3})
	idle := func(when string) {
		t.Helper()
		s := e.Stat()
		if s == nil || s.TotalConns() != 0 || s.AcquireCount() != 0 || s.NewConnsCount() != 0 || s.MaxConns() != 3 {
			t.Errorf("Stat %s = %+v, want zeros and MaxConns 3", when, s)
		}
	}
	idle("without a pool")
	if err := e.StartConnectionPool(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := e.Stat(); s.MaxConns() != 3 || s.TotalConns() < 1 || s.NewConnsCount() < 1 {
		t.Errorf("Stat with a pool: MaxConns %d, TotalConns %d; want 3 and the pinged connection", s.MaxConns(), s.TotalConns())
	}
	if got := e.Config().MaxConns; got != 3 {
		t.Errorf("Config().MaxConns = %d, want 3", got)
	}
	e.Close()
	idle("after Close")
}
