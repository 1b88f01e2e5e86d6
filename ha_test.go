package piccolo_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/internal/pgcluster"
)

// The high-availability tests share one Patroni cluster (etcd and three
// PostgreSQL nodes, synchronous mode), started by the first of them and
// stopped by TestMain when the package's tests end. They take turns on
// it: each switches over or kills the leader.
var haShared struct {
	once sync.Once
	p    *pgcluster.Patroni
	err  error
	turn sync.Mutex // held by the test using the cluster
}

// haCluster returns the shared Patroni cluster, healthy (a leader, a
// synchronous standby, every node running), for the test's sole use until
// it ends.
func haCluster(t *testing.T) *pgcluster.Patroni {
	t.Helper()
	haShared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		began := time.Now()
		haShared.p, haShared.err = pgcluster.StartPatroni(ctx, pgcluster.PatroniOptions{})
		if haShared.err == nil {
			t.Logf("Patroni cluster bootstrapped in %v", time.Since(began).Round(100*time.Millisecond))
		}
	})
	if haShared.err != nil {
		t.Fatalf("start the Patroni cluster: %v", haShared.err)
	}
	haShared.turn.Lock()
	t.Cleanup(haShared.turn.Unlock)
	if _, err := haShared.p.WaitHealthy(haDeadline(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	return haShared.p
}

// stopHACluster stops the shared Patroni cluster, if a test started it.
func stopHACluster() error {
	if haShared.p == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return haShared.p.Stop(ctx)
}

// haDeadline returns the test's context with a deadline d from now.
func haDeadline(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// withAppName adds application_name to dsn, so that the tests can tell
// their engines' backends apart in pg_stat_activity.
func withAppName(t *testing.T, dsn, name string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// haEngine returns a pooled engine on the cluster's multi-host DSN
// (target_session_attrs=read-write), closed when the test ends. With
// routed, every node is an extra node and reads are routed to those in
// recovery.
func haEngine(t *testing.T, p *pgcluster.Patroni, app string, routed bool) *piccolo.PostgresEngine {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler) // a failover makes the engine warn many times
	cfg := piccolo.PostgresConfig{
		DSN:            withAppName(t, p.DSN("postgres"), app),
		MaxConns:       16,
		ConnectTimeout: 3 * time.Second,
		Logger:         quiet,
	}
	if routed {
		cfg.ExtraNodes = map[string]*piccolo.PostgresEngine{}
		for _, name := range p.Names() {
			cfg.ExtraNodes[name] = newEngine(t, false, piccolo.PostgresConfig{
				DSN: withAppName(t, p.NodeDSN(name, "postgres"), app+"-read"), MaxConns: 8,
				ConnectTimeout: 3 * time.Second, Logger: quiet,
			})
		}
		cfg.ReadRouting = &piccolo.ReadRouting{CheckInterval: haHealthInterval}
	}
	return newEngine(t, true, cfg)
}

// haHealthInterval is how often the HA tests' engines check their nodes.
const haHealthInterval = 500 * time.Millisecond

// The engine on a multi-host DSN with target_session_attrs=read-write
// writes to whichever node is the primary: the leader at first, the new
// leader after a switchover through Patroni's REST API.
func TestHAWritesFollowThePrimary(t *testing.T) {
	t.Parallel()
	p := haCluster(t)
	e := haEngine(t, p, "ha-follow", false)
	table := newTable(t, e)
	ctx := haDeadline(t, time.Minute)
	writeOn := func(want pgcluster.Member, name string) {
		t.Helper()
		var port int
		err := e.Transaction(ctx, func(ctx context.Context) error {
			if err := insert(ctx, e, table, name); err != nil {
				return err
			}
			var err error
			port, err = portOf(ctx, e)
			return err
		})
		if err != nil {
			t.Fatalf("write %q: %v", name, err)
		}
		if port != want.Port {
			t.Fatalf("write %q ran on port %d, want the leader %s on %d", name, port, want.Name, want.Port)
		}
	}
	leader, err := p.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	writeOn(leader, "before")

	began := time.Now()
	next, err := p.Switchover(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitWritable(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("switchover %s -> %s: writable after %v", leader.Name, next.Name, time.Since(began).Round(100*time.Millisecond))
	writeOn(next, "after")
	if got := fmt.Sprint(names(t, e, table)); got != "[before after]" {
		t.Fatalf("rows %s, want [before after]", got)
	}
}
