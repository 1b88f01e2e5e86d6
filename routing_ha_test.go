package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/internal/pgcluster"
)

// multiHostDSN returns a URL naming every cluster, in order, with
// target_session_attrs=read-write: a connection goes to the first that
// accepts writes.
func multiHostDSN(t *testing.T, clusters ...*pgcluster.Cluster) string {
	t.Helper()
	u, err := url.Parse(clusters[0].DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	hosts := ""
	for i, c := range clusters {
		if i > 0 {
			hosts += ","
		}
		hosts += "127.0.0.1:" + strconv.Itoa(c.Port())
	}
	u.Host = hosts
	q := u.Query()
	q.Set("target_session_attrs", "read-write")
	u.RawQuery = q.Encode()
	return u.String()
}

// switchover makes standby the primary and primary its standby, as a
// failover manager's switchover does: the primary is shut down cleanly
// (its last WAL reaches the standby) and comes back in recovery, streaming
// from the standby, which is then promoted; the old primary follows it to
// its new timeline.
func switchover(t *testing.T, primary, standby *pgcluster.Cluster) {
	t.Helper()
	ctx := context.Background()
	old := newEngine(t, false, piccolo.PostgresConfig{DSN: primary.DSN("postgres")})
	for _, sql := range []string{
		fmt.Sprintf("ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=%d user=postgres'", standby.Port()),
		fmt.Sprintf("COPY (SELECT) TO '%s'", filepath.Join(primary.DataDir(), "standby.signal")),
	} {
		if err := old.RunDDL(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if err := primary.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	promoted := newEngine(t, false, piccolo.PostgresConfig{DSN: standby.DSN("postgres")})
	if !scalar[bool](t, ctx, promoted, "SELECT pg_promote()") {
		t.Fatal("pg_promote() did not finish")
	}
	eventually(t, "the old primary follows the new one", func() error {
		rows, err := old.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT status FROM pg_stat_wal_receiver"})
		if err != nil {
			return err
		}
		if len(rows) != 1 || rows[0]["status"] != "streaming" {
			return fmt.Errorf("wal receiver: %v", rows)
		}
		return nil
	})
}

// serverPort is the port of the server a statement under ctx with opts
// ran on.
func serverPort(t *testing.T, ctx context.Context, e *piccolo.PostgresEngine, opts ...piccolo.Option) int {
	t.Helper()
	return int(scalarOn[int32](t, ctx, e, "SELECT inet_server_port()", opts...))
}

// A multi-host DSN with target_session_attrs=read-write is how the engine
// points at a cluster: its connections go to whichever host is the
// primary, before and after a switchover.
func TestMultiHostDSNWritesToThePrimary(t *testing.T) {
	t.Parallel()
	pair := newReplicaPair(t)
	// The standby first: target_session_attrs skips it.
	e := newEngine(t, true, piccolo.PostgresConfig{DSN: multiHostDSN(t, pair.standby, pair.primary)})
	ctx := context.Background()
	table := newTable(t, e)
	mustInsert(t, ctx, e, table, "before")
	if got := serverPort(t, ctx, e); got != pair.primary.Port() {
		t.Fatalf("the engine writes to port %d, want the primary's %d", got, pair.primary.Port())
	}

	switchover(t, pair.primary, pair.standby)
	// The connections to the old primary broke when it restarted; new ones
	// find the new primary.
	promoted, failures := time.Now(), 0
	eventually(t, "writes reach the new primary", func() error {
		err := insert(ctx, e, table, "after")
		if err != nil {
			failures++
		}
		return err
	})
	t.Logf("writes reached the new primary %v after the switchover, %d failed on the way", time.Since(promoted).Round(time.Millisecond), failures)
	if got := serverPort(t, ctx, e); got != pair.standby.Port() {
		t.Fatalf("after the switchover the engine writes to port %d, want the new primary's %d", got, pair.standby.Port())
	}
	if n := scalar[int64](t, ctx, e, "SELECT count(*) FROM "+table); n != 2 {
		t.Fatalf("%d rows on the new primary, want 2", n)
	}
}

// discoveringEngine returns a started engine on the pair through a
// multi-host DSN, discovering standbys among its hosts.
func discoveringEngine(t *testing.T, pair replicaPair, interval time.Duration) *piccolo.PostgresEngine {
	t.Helper()
	return newEngine(t, true, piccolo.PostgresConfig{
		DSN:         multiHostDSN(t, pair.primary, pair.standby),
		ReadRouting: &piccolo.ReadRouting{Discover: true, CheckInterval: interval},
	})
}

// routedNames returns the names of the nodes ReadNodes reports routed.
func routedNames(e *piccolo.PostgresEngine) []string {
	var names []string
	for _, n := range e.ReadNodes() {
		if n.Routed {
			names = append(names, n.Name)
		}
	}
	return names
}

func hostName(c *pgcluster.Cluster) string { return "127.0.0.1:" + strconv.Itoa(c.Port()) }

// Routing rule 2: with Discover, the hosts in recovery are candidates and
// the primary among the cluster's hosts is not; reads go to the standby,
// everything else to the primary.
func TestRoutingRule2DiscoveredStandbysAreCandidates(t *testing.T) {
	t.Parallel()
	pair := newReplicaPair(t)
	e := discoveringEngine(t, pair, time.Hour)
	ctx := context.Background()
	if got, want := routedNames(e), []string{hostName(pair.standby)}; !slices.Equal(got, want) {
		t.Fatalf("routed nodes %v, want %v; ReadNodes: %+v", got, want, e.ReadNodes())
	}
	nodes := e.ReadNodes()
	if len(nodes) != 2 || !nodes[0].Discovered || nodes[0].Standby || !nodes[1].Standby || nodes[1].Replayed == 0 {
		t.Fatalf("ReadNodes: %+v, want the primary (not a standby) then the standby with its replay position", nodes)
	}
	if got := serverPort(t, ctx, e, piccolo.Read()); got != pair.standby.Port() {
		t.Fatalf("a routed read ran on port %d, want the standby's %d", got, pair.standby.Port())
	}
	if got := serverPort(t, ctx, e); got != pair.primary.Port() {
		t.Fatalf("a statement without Read ran on port %d, want the primary's %d", got, pair.primary.Port())
	}
}

// Routing rule 5: health checks decide the candidates afresh. After a
// switchover the old primary, back as a standby, gets the reads and the new
// primary gets none; once that standby is down, reads go to the primary.
func TestRoutingRule5ChecksFollowASwitchover(t *testing.T) {
	t.Parallel()
	pair := newReplicaPair(t)
	e := discoveringEngine(t, pair, 100*time.Millisecond)
	ctx := context.Background()
	read := piccolo.Read()
	if got := serverPort(t, ctx, e, read); got != pair.standby.Port() {
		t.Fatalf("a routed read ran on port %d, want the standby's %d", got, pair.standby.Port())
	}

	switchover(t, pair.primary, pair.standby)
	rejoined := time.Now()
	eventually(t, "reads go to the old primary, now a standby", func() error {
		for range 4 {
			port, err := portOf(ctx, e, read)
			if err != nil {
				return err
			}
			if port != pair.primary.Port() {
				return fmt.Errorf("a routed read ran on port %d; ReadNodes: %+v", port, e.ReadNodes())
			}
		}
		return nil
	})
	if got, want := routedNames(e), []string{hostName(pair.primary)}; !slices.Equal(got, want) {
		t.Fatalf("routed nodes %v, want %v", got, want)
	}
	t.Logf("reads reached the old primary %v after it streamed from the new one (CheckInterval 100ms)", time.Since(rejoined).Round(time.Millisecond))

	if err := pair.primary.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "reads go to the new primary once the standby is down", func() error {
		port, err := portOf(ctx, e, read)
		if err != nil {
			return err
		}
		if port != pair.standby.Port() {
			return fmt.Errorf("a routed read ran on port %d", port)
		}
		if names := routedNames(e); len(names) != 0 {
			return fmt.Errorf("routed nodes %v, want none", names)
		}
		return nil
	})
}

// portOf is serverPort returning the error: the statement may meet a
// connection the switchover broke.
func portOf(ctx context.Context, e *piccolo.PostgresEngine, opts ...piccolo.Option) (int, error) {
	rows, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT inet_server_port() AS p"}, opts...)
	if err != nil {
		return 0, err
	}
	return int(rows[0]["p"].(int32)), nil
}

// Routing rules 6 and 7: a commit under WithReadYourWrites records its WAL
// position; a routed read under that context runs on a standby only once
// its replay has reached it, else on the primary, and sees the write.
// Health checks are hourly here: only the on-demand re-check can find that
// the standby caught up.
func TestRoutingRule6ReadYourWrites(t *testing.T) {
	t.Parallel()
	pair := newReplicaPair(t)
	e := discoveringEngine(t, pair, time.Hour)
	standby := newEngine(t, false, piccolo.PostgresConfig{DSN: pair.standby.DSN("postgres")})
	ctx := context.Background()
	table := newTable(t, e)
	count := func(ctx context.Context) (rows int64, port int) {
		t.Helper()
		got, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT count(*) AS n, inet_server_port() AS p FROM " + table}, piccolo.Read())
		if err != nil {
			t.Fatal(err)
		}
		return got[0]["n"].(int64), int(got[0]["p"].(int32))
	}
	eventually(t, "the table reaches the standby", func() error {
		_, err := standby.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT 1 FROM " + table})
		return err
	})
	if err := standby.RunDDL(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "replay paused", func() error {
		if s := scalar[string](t, ctx, standby, "SELECT pg_get_wal_replay_pause_state()"); s != "paused" {
			return errors.New(s)
		}
		return nil
	})

	rctx := piccolo.WithReadYourWrites(ctx)
	if piccolo.ReadAfter(rctx) != 0 {
		t.Fatal("a new context carries a position")
	}
	err := e.Transaction(rctx, func(ctx context.Context) error { return insert(ctx, e, table, "mine") })
	if err != nil {
		t.Fatal(err)
	}
	pos := piccolo.ReadAfter(rctx)
	if pos == 0 || pos == piccolo.LSN(^uint64(0)) {
		t.Fatalf("position after the commit: %v", pos)
	}
	if n, port := count(rctx); n != 1 || port != pair.primary.Port() {
		t.Fatalf("read under the position: %d rows on port %d, want 1 on the primary's %d", n, port, pair.primary.Port())
	}
	if n, port := count(ctx); n != 0 || port != pair.standby.Port() {
		t.Fatalf("read without the position: %d rows on port %d, want 0 on the paused standby's %d", n, port, pair.standby.Port())
	}
	// The position travels as text, into another context.
	parsed, err := piccolo.ParseLSN(pos.String())
	if err != nil || parsed != pos {
		t.Fatalf("ParseLSN(%q) = %v, %v", pos.String(), parsed, err)
	}
	other := piccolo.WithReadAfter(ctx, parsed)
	if n, port := count(other); n != 1 || port != pair.primary.Port() {
		t.Fatalf("read under the carried position: %d rows on port %d, want 1 on the primary", n, port)
	}

	// A write outside a transaction counts too.
	actx := piccolo.WithReadYourWrites(ctx)
	mustInsert(t, actx, e, table, "autocommit")
	if n, port := count(actx); n != 2 || port != pair.primary.Port() {
		t.Fatalf("read after a write outside a transaction: %d rows on port %d, want 2 on the primary", n, port)
	}
	// A statement on an engine of a standby, used directly, wrote nothing
	// and records nothing.
	before := piccolo.ReadAfter(actx)
	if _, err := standby.RunQuerystring(actx, piccolo.Querystring{SQL: "SELECT 1"}); err != nil {
		t.Fatal(err)
	}
	if got := piccolo.ReadAfter(actx); got != before {
		t.Fatalf("a statement on a standby moved the position from %v to %v", before, got)
	}

	if err := standby.RunDDL(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	eventually(t, "the read goes to the standby once it caught up", func() error {
		if n, port := count(actx); n != 2 || port != pair.standby.Port() {
			return fmt.Errorf("%d rows on port %d; position %v, nodes %+v", n, port, piccolo.ReadAfter(actx), e.ReadNodes())
		}
		return nil
	})
	t.Logf("reads under the position reached the standby %v after replay resumed (health checks hourly: the on-demand re-check found it)", time.Since(resumed).Round(time.Millisecond))
	if r, pos := e.ReadNodes()[1].Replayed, piccolo.ReadAfter(actx); r < pos {
		t.Fatalf("ReadNodes reports replay at %v, below %v the standby served", r, pos)
	}
}
