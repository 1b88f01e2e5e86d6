package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/pgtest"
)

// retryFailovers are the options of a transaction that rides through
// failovers with the default budget.
var retryFailovers = []piccolo.TxOption{piccolo.Retry(3), piccolo.FailoverBudget(0)}

// Rule 14 (txend.go): with Retry and FailoverBudget, a transaction whose
// connection is lost before COMMIT was sent (its backend terminated) was
// rolled back by the server, so Transaction runs the closure again from
// BEGIN, on a fresh connection, and commits; only the re-run's work is
// committed. Whether the closure returns the failure or swallows it (then
// Commit finds the connection closed before COMMIT) makes no difference.
func TestRule14LostConnectionBeforeCommitRunsAgain(t *testing.T) {
	t.Parallel()
	e, killer, table := killable(t)
	bg := context.Background()
	for _, swallow := range []bool{false, true} {
		calls := 0
		err := e.Transaction(bg, func(ctx context.Context) error {
			calls++
			mustInsert(t, ctx, e, table, fmt.Sprintf("swallow %v attempt %d", swallow, calls))
			if calls > 1 {
				return nil
			}
			pid := scalar[int32](t, ctx, e, "SELECT pg_backend_pid()")
			scalar[bool](t, bg, killer, "SELECT pg_terminate_backend($1, 5000)", pid)
			err := insert(ctx, e, table, "after the kill")
			if swallow || err == nil {
				return nil
			}
			return err
		}, retryFailovers...)
		if err != nil || calls != 2 {
			t.Fatalf("swallow %v: %v after %d calls, want nil after 2", swallow, err, calls)
		}
	}
	assertRows(t, e, table, "swallow false attempt 2", "swallow true attempt 2") // only the re-runs' rows
	assertNoBorrowed(t, e)
}

// Rule 14, as it was: without FailoverBudget, Retry re-runs only
// serialization failures and deadlocks, and a lost connection reaches the
// caller after one run.
func TestRule14WithoutFailoverBudgetLostConnectionIsReturned(t *testing.T) {
	t.Parallel()
	e, killer, table := killable(t)
	calls := 0
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		calls++
		pid := scalar[int32](t, ctx, e, "SELECT pg_backend_pid()")
		scalar[bool](t, context.Background(), killer, "SELECT pg_terminate_backend($1, 5000)", pid)
		return insert(ctx, e, table, "after the kill")
	}, piccolo.Retry(3))
	var re *piccolo.RetryError
	if err == nil || calls != 1 || errors.As(err, &re) {
		t.Fatalf("%v after %d calls, want the connection's failure after 1", err, calls)
	}
}

// Rule 14: once COMMIT was sent, a lost connection is ErrAmbiguousCommit
// (the server may have committed) and the closure never runs again, even
// with a failover budget.
func TestRule14AmbiguousCommitNeverRunsAgain(t *testing.T) {
	t.Parallel()
	armed, cut, e := commitCutter(t)
	direct := newEngine(t, false, piccolo.PostgresConfig{})
	table := newTable(t, direct)
	commit := []byte("COMMIT\x00")
	calls := 0
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		calls++
		mustInsert(t, ctx, e, table, fmt.Sprint("attempt ", calls))
		armed.Store(&commit)
		return nil
	}, retryFailovers...)
	<-cut
	var re *piccolo.RetryError
	if !errors.Is(err, piccolo.ErrAmbiguousCommit) || errors.As(err, &re) || calls != 1 {
		t.Fatalf("%v after %d calls, want ErrAmbiguousCommit after 1", err, calls)
	}
	eventually(t, "the ambiguous commit's row", func() error {
		if got := names(t, direct, table); len(got) != 1 || got[0] != "attempt 1" {
			return fmt.Errorf("rows %v", got)
		}
		return nil
	})
}

// Rule 14: a transaction that could not connect (the server refuses
// connections, as a node does while a failover runs) is run once it can:
// BEGIN was never sent.
func TestRule14CouldNotConnectRunsOnceConnected(t *testing.T) {
	t.Parallel()
	dsn := pgtest.DSN(t)
	proxy := startFaultProxy(t, dsn)
	refused := make(chan struct{}, 16)
	e := newEngine(t, true, piccolo.PostgresConfig{DSN: proxy.proxiedDSN(t, dsn), MaxConns: 1, Tracer: connectFailures(refused)})
	table := newTable(t, newEngine(t, false, piccolo.PostgresConfig{}))
	mustInsert(t, context.Background(), e, table, "before")
	proxy.setRefuse(true)
	done := make(chan error, 1)
	calls := 0
	go func() {
		done <- e.Transaction(context.Background(), func(ctx context.Context) error {
			calls++
			return insert(ctx, e, table, "during")
		}, retryFailovers...)
	}()
	<-refused
	<-refused // a connection was refused twice: Transaction waited and tried again
	proxy.setRefuse(false)
	if err := <-done; err != nil || calls != 1 {
		t.Fatalf("%v after %d calls, want nil after 1", err, calls)
	}
	if got := names(t, e, table); len(got) != 2 {
		t.Fatalf("rows %v", got)
	}
}

// Rule 14: when the failover budget runs out, Transaction gives up with a
// *RetryError saying it was a failover and how long it waited, wrapping
// the last failure.
func TestRule14FailoverBudgetRunsOut(t *testing.T) {
	t.Parallel()
	dsn := pgtest.DSN(t)
	proxy := startFaultProxy(t, dsn)
	e := newEngine(t, true, piccolo.PostgresConfig{DSN: proxy.proxiedDSN(t, dsn), MaxConns: 1})
	proxy.setRefuse(true)
	calls := 0
	err := e.Transaction(context.Background(), func(context.Context) error { calls++; return nil },
		piccolo.Retry(2), piccolo.FailoverBudget(300*time.Millisecond))
	var re *piccolo.RetryError
	var connErr *pgconn.ConnectError
	if !errors.As(err, &re) || !re.Failover || re.Waited <= 0 || re.Attempts < 2 || !errors.As(err, &connErr) || calls != 0 {
		t.Fatalf("%v (%+v) after %d calls, want a failover *RetryError wrapping the connect error", err, re, calls)
	}
	if !strings.Contains(err.Error(), "failover") || strings.Count(err.Error(), "piccolo: ") != 1 {
		t.Fatalf("%q: want one piccolo prefix and the failure kind", err)
	}
}

// Rule 14: a connection refused for a reason waiting cannot mend (a
// database that does not exist) is not a failover: it comes back at once.
func TestRule14ConnectErrorOfConfigurationNotRetried(t *testing.T) {
	t.Parallel()
	cfg, err := pgconn.ParseConfig(pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	dsn := fmt.Sprintf("host=%s port=%d user=%s dbname=piccolo_no_such_database sslmode=disable", cfg.Host, cfg.Port, cfg.User)
	e := newEngine(t, false, piccolo.PostgresConfig{DSN: dsn})
	calls := 0
	err = e.Transaction(context.Background(), func(context.Context) error { calls++; return nil }, retryFailovers...)
	var re *piccolo.RetryError
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" || errors.As(err, &re) || calls != 0 {
		t.Fatalf("%v after %d calls, want 3D000 at once", err, calls)
	}
}

// FailoverBudget means something only with Retry, for Transaction; a
// negative budget is refused.
func TestFailoverBudgetOptionRefused(t *testing.T) {
	t.Parallel()
	e := newEngine(t, false, piccolo.PostgresConfig{})
	ctx := context.Background()
	nothing := func(context.Context) error { return nil }
	for name, err := range map[string]error{
		"without Retry": e.Transaction(ctx, nothing, piccolo.FailoverBudget(time.Second)),
		"negative":      e.Transaction(ctx, nothing, piccolo.Retry(2), piccolo.FailoverBudget(-time.Second)),
		"Begin":         func() error { _, _, err := e.Begin(ctx, piccolo.Retry(2), piccolo.FailoverBudget(0)); return err }(),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A 25006 that the transaction asked for, by ReadOnly or by its own SET
// TRANSACTION READ ONLY, is the caller's: the connection is not evicted
// (the pool's one connection keeps its backend) and nothing is re-run.
func TestReadOnlyByChoiceNotEvictedNorRetried(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{MaxConns: 1})
	table := newTable(t, e)
	bg := context.Background()
	pid := scalar[int32](t, bg, e, "SELECT pg_backend_pid()")
	for name, opts := range map[string][]piccolo.TxOption{
		"ReadOnly": append([]piccolo.TxOption{piccolo.ReadOnly()}, retryFailovers...),
		"SET":      retryFailovers,
	} {
		calls := 0
		err := e.Transaction(bg, func(ctx context.Context) error {
			calls++
			if _, err := e.Exec(ctx, piccolo.Querystring{SQL: "SET TRANSACTION READ ONLY"}); err != nil {
				return err
			}
			return insert(ctx, e, table, "refused")
		}, opts...)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "25006" || calls != 1 {
			t.Fatalf("%s: %v after %d calls, want 25006 after 1", name, err, calls)
		}
		if got := scalar[int32](t, bg, e, "SELECT pg_backend_pid()"); got != pid {
			t.Fatalf("%s: the connection was evicted (backend %d, then %d)", name, pid, got)
		}
	}
}

// connectFailures is a tracer that sends on failed once per failed
// connection attempt.
func connectFailures(failed chan<- struct{}) pgx.QueryTracer { return connectTracer{failed} }

type connectTracer struct{ failed chan<- struct{} }

func (connectTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}
func (connectTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (connectTracer) TraceConnectStart(ctx context.Context, _ pgx.TraceConnectStartData) context.Context {
	return ctx
}
func (c connectTracer) TraceConnectEnd(_ context.Context, data pgx.TraceConnectEndData) {
	if data.Err != nil {
		select {
		case c.failed <- struct{}{}:
		default:
		}
	}
}

// commitCutter returns a pooled engine whose connections close right after
// writing the message armed holds (see cutConn); cut receives then.
func commitCutter(t *testing.T) (*atomic.Pointer[[]byte], chan struct{}, *piccolo.PostgresEngine) {
	armed := new(atomic.Pointer[[]byte])
	cut := make(chan struct{}, 1)
	return armed, cut, newEngine(t, true, piccolo.PostgresConfig{MaxConns: 2, Configure: cutConns(armed, cut)})
}

// killable returns a pooled engine, an engine to terminate its backends
// with, and a table of the test's own.
func killable(t *testing.T) (e, killer *piccolo.PostgresEngine, table string) {
	e = newEngine(t, true, piccolo.PostgresConfig{MaxConns: 2})
	return e, newEngine(t, false, piccolo.PostgresConfig{}), newTable(t, e)
}
