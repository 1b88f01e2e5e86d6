package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
)

// failoverSetup is a primary and its standby, and an engine on both
// through a multi-host DSN with target_session_attrs=read-write, its pool
// full of connections to the primary, with a table written before the
// failover and replayed on the standby.
type failoverSetup struct {
	replicaPair
	e, onPrimary, onStandby *piccolo.PostgresEngine
	app, table              string
}

// failoverMaxConns is the pool size of failoverSetup's engine.
const failoverMaxConns = 3

// newFailoverSetup starts it; tracer, when not nil, traces the engine.
func newFailoverSetup(t *testing.T, tracer pgx.QueryTracer) failoverSetup {
	t.Helper()
	s := failoverSetup{replicaPair: newReplicaPair(t), app: fmt.Sprintf("failover_%d", tableSeq.Add(1))}
	dsn := fmt.Sprintf("host=127.0.0.1,127.0.0.1 port=%d,%d user=postgres dbname=postgres sslmode=disable "+
		"target_session_attrs=read-write application_name=%s", s.primary.Port(), s.standby.Port(), s.app)
	s.e = newEngine(t, true, piccolo.PostgresConfig{DSN: dsn, MaxConns: failoverMaxConns, Tracer: tracer})
	s.onPrimary = newEngine(t, false, piccolo.PostgresConfig{DSN: s.primary.DSN("postgres")})
	s.onStandby = newEngine(t, false, piccolo.PostgresConfig{DSN: s.standby.DSN("postgres")})
	s.table = newTable(t, s.e)
	mustInsert(t, context.Background(), s.e, s.table, "before")
	warmPool(t, s.e, failoverMaxConns)
	if n := backends(t, s.onPrimary, s.app, ""); n != failoverMaxConns {
		t.Fatalf("%d pooled backends on the primary, want %d", n, failoverMaxConns)
	}
	eventually(t, "the standby replaying the row", func() error {
		rows, err := s.onStandby.RunQuerystring(context.Background(), piccolo.Querystring{SQL: "SELECT name FROM " + s.table})
		if err != nil || len(rows) != 1 {
			return fmt.Errorf("%v rows, %v", rows, err)
		}
		return nil
	})
	return s
}

// makePrimaryReadOnly turns the primary read-only for every session, as
// a fencing failover manager does without a restart:
// default_transaction_read_only=on in its configuration, reloaded. It
// returns once every pooled backend has taken the reload in (a backend
// reads its configuration again between two statements).
func (s failoverSetup) makePrimaryReadOnly(t *testing.T) {
	t.Helper()
	bg := context.Background()
	for _, sql := range []string{"ALTER SYSTEM SET default_transaction_read_only = on", "SELECT pg_reload_conf()"} {
		if _, err := s.onPrimary.Exec(bg, piccolo.Querystring{SQL: sql}); err != nil {
			t.Fatal(err)
		}
	}
	held := make([]*piccolo.PostgresTransaction, failoverMaxConns)
	for i := range held {
		var ctx context.Context
		ctx, held[i] = mustBegin(t, s.e)
		eventually(t, "the pooled backend reading the new configuration", func() error {
			if v := scalar[string](t, ctx, s.e, "SHOW default_transaction_read_only"); v != "on" {
				return errors.New(v)
			}
			return nil
		})
	}
	for _, tx := range held {
		if err := tx.Rollback(bg); err != nil {
			t.Fatal(err)
		}
	}
}

// promote makes the standby the primary.
func (s failoverSetup) promote(t *testing.T) {
	t.Helper()
	if !scalar[bool](t, context.Background(), s.onStandby, "SELECT pg_promote()") {
		t.Fatal("the standby was not promoted")
	}
}

// transfer runs a transaction with Retry and FailoverBudget that writes
// row, and returns the port of the server each run of its closure was on.
func (s failoverSetup) transfer(t *testing.T, row string) []int32 {
	t.Helper()
	r := s.tryTransfer(row)
	if r.err != nil {
		t.Fatalf("Transaction across the failover: %v (runs on ports %v)", r.err, r.ports)
	}
	t.Logf("the transaction committed %v after it started, in %d runs", r.took.Round(time.Millisecond), len(r.ports))
	return r.ports
}

// transferred is what tryTransfer saw.
type transferred struct {
	ports []int32 // the server port each run of the closure was on
	took  time.Duration
	ended time.Time
	err   error
}

// tryTransfer is transfer for any goroutine.
func (s failoverSetup) tryTransfer(row string) transferred {
	var r transferred
	start := time.Now()
	r.err = s.e.Transaction(context.Background(), func(ctx context.Context) error {
		var port int32
		err := s.e.QueryFunc(ctx, piccolo.Querystring{SQL: "SELECT inet_server_port()"}, func(rows pgx.Rows) error { return rows.Scan(&port) })
		if err != nil {
			return err
		}
		r.ports = append(r.ports, port)
		return insert(ctx, s.e, s.table, row)
	}, retryFailovers...)
	r.ended = time.Now()
	r.took = r.ended.Sub(start)
	return r
}

// newPrimaryHasAll checks that the new primary has the rows written
// before and across the failover, and that no connection of the engine is
// left on the old primary (poll: the server ends evicted backends
// asynchronously).
func (s failoverSetup) newPrimaryHasAll(t *testing.T, rows ...string) {
	t.Helper()
	assertRows(t, s.onStandby, s.table, rows...)
	eventually(t, "no pooled connection on the old primary", func() error {
		if n := backends(t, s.onPrimary, s.app, ""); n != 0 {
			return fmt.Errorf("%d backends of the engine on the old primary", n)
		}
		return nil
	})
	if got := backends(t, s.onStandby, s.app, ""); got < 1 || got > failoverMaxConns {
		t.Fatalf("%d backends of the engine on the new primary", got)
	}
}

// Rule 15 (conn.go's evictIfReadOnly): a pooled connection whose node
// turned read-only under it (the old primary demoted, here by
// default_transaction_read_only=on in its configuration, reloaded, as a
// fencing failover manager does, without a restart) meets 25006; the
// engine asks the node, finds it read-only for everyone, and evicts that
// connection and the pool's idle ones, without waiting for
// MaxConnLifetime. Rule 14: Transaction with Retry and FailoverBudget runs
// the closure again; the new connection skips the read-only host
// (target_session_attrs=read-write) and commits on the new primary.
func TestRule15ReadOnlyNodeEvictedAndRule14CommitsOnNewPrimary(t *testing.T) {
	t.Parallel()
	s := newFailoverSetup(t, nil)
	s.makePrimaryReadOnly(t)
	s.promote(t)
	ports := s.transfer(t, "across")
	if want := []int32{int32(s.primary.Port()), int32(s.standby.Port())}; !slices.Equal(ports, want) {
		t.Fatalf("the closure ran on ports %v, want %v (the old primary, then the new one)", ports, want)
	}
	s.newPrimaryHasAll(t, "before", "across")
}

// Rule 15 outside a transaction: an autocommit write that meets 25006 on
// a node turned read-only fails (nothing re-runs a statement), and the
// pool's connections to that node are evicted at once.
func TestRule15ReadOnlyNodeEvictedByAutocommitWrite(t *testing.T) {
	t.Parallel()
	s := newFailoverSetup(t, nil)
	s.makePrimaryReadOnly(t)
	err := insert(context.Background(), s.e, s.table, "refused")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "25006" {
		t.Fatalf("a write on the read-only node: %v, want 25006", err)
	}
	eventually(t, "no pooled connection on the read-only node", func() error {
		if n := backends(t, s.onPrimary, s.app, ""); n != 0 {
			return fmt.Errorf("%d backends of the engine on it", n)
		}
		return nil
	})
}

// Rule 14 across a failover: the primary goes down under the pool (its
// sessions end with 57P01, then it refuses connections) and, for a while,
// no node takes writes: a transaction started then waits, trying again
// with backoff, and once the standby is promoted it runs and commits
// there. The pooled connections to the old primary are never handed out.
func TestRule14FailoverWaitsForNewPrimary(t *testing.T) {
	t.Parallel()
	refused := make(chan struct{}, 64)
	s := newFailoverSetup(t, connectFailures(refused))
	if err := s.primary.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan transferred, 1)
	go func() { done <- s.tryTransfer("across") }()
	for range 2 { // no node takes writes: the transaction waits and tries again
		select {
		case <-refused:
		case r := <-done:
			t.Fatalf("the transaction ended while no node took writes: %v (runs on ports %v)", r.err, r.ports)
		}
	}
	promoted := time.Now()
	s.promote(t)
	r := <-done
	if r.err != nil {
		t.Fatalf("Transaction across the failover: %v (runs on ports %v)", r.err, r.ports)
	}
	t.Logf("committed %v after it started, %v after the promotion was asked for",
		r.took.Round(time.Millisecond), r.ended.Sub(promoted).Round(time.Millisecond))
	if want := []int32{int32(s.standby.Port())}; !slices.Equal(r.ports, want) {
		t.Fatalf("the closure ran on ports %v, want %v: once, on the new primary", r.ports, want)
	}
	assertRows(t, s.onStandby, s.table, "before", "across") // on the new primary
}

// Rule 14 under load: workers keep writing with Retry and FailoverBudget
// while the primary goes down and the standby is promoted. No error
// reaches them but ErrAmbiguousCommit (a COMMIT the shutdown answered),
// each of which is resolved against the new primary; every acknowledged
// write is there. The longest gap between two acknowledged writes is
// logged (it spans the failover).
func TestRule14FailoverUnderLoad(t *testing.T) {
	t.Parallel()
	refused := make(chan struct{}, 64)
	s := newFailoverSetup(t, connectFailures(refused))
	const workers = 4
	acked := make(chan string, 1024)
	stop := make(chan struct{})
	errs := make(chan error, workers)
	var ambiguous []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	stopOnce := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopOnce) // a failed test stops the workers before the engine closes
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				row := fmt.Sprintf("w%d-%d", w, i)
				err := s.e.Transaction(context.Background(), func(ctx context.Context) error {
					return insert(ctx, s.e, s.table, row)
				}, retryFailovers...)
				switch {
				case errors.Is(err, piccolo.ErrAmbiguousCommit):
					mu.Lock()
					ambiguous = append(ambiguous, row)
					mu.Unlock()
				case err != nil:
					errs <- fmt.Errorf("%s: %w", row, err)
					return
				default:
					acked <- row
				}
			}
		})
	}
	var rows []string
	var gap time.Duration
	last := time.Now()
	wait := func(n int) {
		for range n {
			select {
			case row := <-acked:
				rows = append(rows, row)
				gap, last = max(gap, time.Since(last)), time.Now()
			case err := <-errs:
				t.Fatalf("an error reached a caller: %v", err)
			}
		}
	}
	wait(50)
	if err := s.primary.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 2 { // no node takes writes: the workers wait
		select {
		case <-refused:
		case err := <-errs:
			t.Fatalf("an error reached a caller: %v", err)
		}
	}
	s.promote(t)
	wait(50)
	stopOnce()
	close(errs)
	for err := range errs {
		t.Fatalf("an error reached a caller: %v", err)
	}
	for len(acked) > 0 {
		rows = append(rows, <-acked)
	}
	on := map[string]bool{}
	for _, name := range names(t, s.onStandby, s.table) {
		on[name] = true
	}
	for _, row := range rows {
		if !on[row] {
			t.Fatalf("acknowledged write %s is not on the new primary", row)
		}
	}
	committed := 0
	for _, row := range ambiguous {
		if on[row] {
			committed++
		}
	}
	t.Logf("%d writes acknowledged, all on the new primary; %d ambiguous commits (%d had committed); longest gap between acknowledged writes %v",
		len(rows), len(ambiguous), committed, gap.Round(time.Millisecond))
}
