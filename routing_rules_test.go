package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/pgtest"
	"go.uber.org/goleak"
)

// The routing rules (replicas.go) that need no standby are checked on the
// package's server: its "nodes" are engines on the same server whose
// connections carry an application_name of their own, which tells where a
// statement ran.

// appNode returns an engine on the package's server whose connections
// carry a unique application_name, and that name.
func appNode(t *testing.T) (*piccolo.PostgresEngine, string) {
	t.Helper()
	dsn, app := faultAppName(t)
	return newEngine(t, false, piccolo.PostgresConfig{DSN: dsn}), app
}

// ranOn returns the application_name of the connection a statement under
// ctx with opts ran on.
func ranOn(t *testing.T, ctx context.Context, e *piccolo.PostgresEngine, opts ...piccolo.Option) string {
	t.Helper()
	return scalarOn[string](t, ctx, e, "SELECT current_setting('application_name')", opts...)
}

// routedEngine returns a started engine with application_name primary and
// nodes as its extra nodes, all routed, checked every interval.
func routedEngine(t *testing.T, nodes map[string]*piccolo.PostgresEngine, interval time.Duration) (*piccolo.PostgresEngine, string) {
	t.Helper()
	dsn, app := faultAppName(t)
	logger, _ := newLogger() // down nodes are warned about at every check
	return newEngine(t, true, piccolo.PostgresConfig{
		DSN:         dsn,
		Logger:      logger,
		ExtraNodes:  nodes,
		ReadRouting: &piccolo.ReadRouting{CheckInterval: interval},
	}), app
}

// Routing rule 1: only a read (Read, or a Querier call under WithRead) made
// outside a transaction without OnNode is routed; the rest runs on the
// primary or the node OnNode names.
func TestRoutingRule1OnlyReadsOutsideTransactionsAreRouted(t *testing.T) {
	t.Parallel()
	r1, node := appNode(t)
	e, primary := routedEngine(t, map[string]*piccolo.PostgresEngine{"r1": r1}, time.Hour)
	ctx := context.Background()
	if got := ranOn(t, ctx, e, piccolo.Read()); got != node {
		t.Fatalf("a read ran on %q, want the node %q", got, node)
	}
	if got := ranOn(t, ctx, e); got != primary {
		t.Fatalf("a statement without Read ran on %q, want the primary %q", got, primary)
	}
	if got := ranOn(t, ctx, e, piccolo.OnNode("r1")); got != node {
		t.Fatalf("OnNode(r1) ran on %q, want %q", got, node)
	}
	err := e.Transaction(ctx, func(ctx context.Context) error {
		if got := ranOn(t, ctx, e, piccolo.Read()); got != primary {
			t.Errorf("a read in a transaction ran on %q, want the primary %q", got, primary)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var got string
	if err := e.Querier().QueryRow(piccolo.WithRead(ctx), "SELECT current_setting('application_name')").Scan(&got); err != nil || got != node {
		t.Fatalf("a Querier read under WithRead ran on %q (%v), want %q", got, err, node)
	}
}

// downNode returns an engine whose server refuses connections.
func downNode(t *testing.T) *piccolo.PostgresEngine {
	t.Helper()
	p := startFaultProxy(t, pgtest.DSN(t))
	p.setRefuse(true)
	return newEngine(t, false, piccolo.PostgresConfig{DSN: p.proxiedDSN(t, pgtest.DSN(t))})
}

// Routing rule 3: reads take the candidates in turn; a node that did not
// answer is none; with no candidate, reads run on the primary.
func TestRoutingRule3CandidatesInTurnElseThePrimary(t *testing.T) {
	t.Parallel()
	r1, a1 := appNode(t)
	r2, a2 := appNode(t)
	e, _ := routedEngine(t, map[string]*piccolo.PostgresEngine{"r1": r1, "r2": r2, "down": downNode(t)}, time.Hour)
	ctx := context.Background()
	seen := map[string]int{}
	last := ""
	for range 6 {
		got := ranOn(t, ctx, e, piccolo.Read())
		if got == last {
			t.Fatalf("two reads in a row ran on %q", got)
		}
		seen[got]++
		last = got
	}
	if seen[a1] != 3 || seen[a2] != 3 {
		t.Fatalf("reads ran on %v, want 3 on each of %q and %q", seen, a1, a2)
	}

	alone, primary := routedEngine(t, map[string]*piccolo.PostgresEngine{"down": downNode(t)}, time.Hour)
	if got := ranOn(t, ctx, alone, piccolo.Read()); got != primary {
		t.Fatalf("with no candidate a read ran on %q, want the primary %q", got, primary)
	}
}

// Routing rule 4 (and rule 5's check at once): a routed read whose node
// fails at the connection level runs again on the primary, and the node is
// out; a check runs at once, without waiting for CheckInterval. An error
// about the statement names the node, which stays in.
func TestRoutingRule4ConnectionFailureFallsBackToThePrimary(t *testing.T) {
	t.Parallel()
	dsn, node := faultAppName(t)
	proxy := startFaultProxy(t, dsn)
	r1 := newEngine(t, false, piccolo.PostgresConfig{DSN: proxy.proxiedDSN(t, dsn)})
	e, primary := routedEngine(t, map[string]*piccolo.PostgresEngine{"r1": r1}, time.Hour)
	ctx := context.Background()
	read := piccolo.Read()
	if got := ranOn(t, ctx, e, read); got != node {
		t.Fatalf("a read ran on %q, want the node %q", got, node)
	}
	_, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT 1/0"}, read)
	if err == nil || !strings.Contains(err.Error(), `node "r1"`) {
		t.Fatalf("a failing read: %v, want the error naming the node", err)
	}
	if nodes := e.ReadNodes(); !nodes[0].Routed {
		t.Fatalf("an error about the statement took the node out: %+v", nodes)
	}

	proxy.setRefuse(true)
	proxy.cutAll()
	if got := ranOn(t, ctx, e, read); got != primary {
		t.Fatalf("a read whose node is down ran on %q, want the primary %q", got, primary)
	}
	if nodes := e.ReadNodes(); nodes[0].Routed {
		t.Fatalf("the node that failed is still routed: %+v", nodes)
	}
	eventually(t, "a check runs at once", func() error {
		if nodes := e.ReadNodes(); nodes[0].Answered {
			return fmt.Errorf("no check saw the node down: %+v", nodes)
		}
		return nil
	})
}

// Routing rule 4, several candidates: a read whose node is down moves on
// to another candidate before the primary (in a failover the primary may
// be the node that is down).
func TestRoutingRule4FallsBackToAnotherCandidateFirst(t *testing.T) {
	t.Parallel()
	dsn1, _ := faultAppName(t)
	proxy := startFaultProxy(t, dsn1)
	r1 := newEngine(t, false, piccolo.PostgresConfig{DSN: proxy.proxiedDSN(t, dsn1)})
	dsn2, node2 := faultAppName(t)
	r2 := newEngine(t, false, piccolo.PostgresConfig{DSN: dsn2})
	e, _ := routedEngine(t, map[string]*piccolo.PostgresEngine{"r1": r1, "r2": r2}, time.Hour)
	ctx := context.Background()
	proxy.setRefuse(true)
	proxy.cutAll()
	for i := range 4 { // round-robin: one of the first two picks r1
		if got := ranOn(t, ctx, e, piccolo.Read()); got != node2 {
			t.Fatalf("read %d ran on %q, want the candidate still up, %q", i, got, node2)
		}
	}
}

// Routing rule 4, a session the node ends: a routed read whose backend
// the node terminates while it runs (57P01, as a node being shut down or
// restarted by a switchover answers) runs again on the primary.
func TestRoutingRule4SessionEndedFallsBackToThePrimary(t *testing.T) {
	t.Parallel()
	dsn, node := faultAppName(t)
	r1 := newEngine(t, false, piccolo.PostgresConfig{DSN: dsn})
	e, primary := routedEngine(t, map[string]*piccolo.PostgresEngine{"r1": r1}, time.Hour)
	ctx := context.Background()
	killer := newEngine(t, false, piccolo.PostgresConfig{})
	stop := make(chan struct{})
	defer close(stop)
	go func() { // terminates the node's statement once it runs
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			_, _ = killer.Exec(ctx, piccolo.Querystring{SQL: "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE '%pg_sleep%'", Args: []any{node}})
		}
	}()
	got := scalarOn[string](t, ctx, e, "SELECT current_setting('application_name') FROM pg_sleep(CASE WHEN current_setting('application_name') = '"+node+"' THEN 30 ELSE 0 END)", piccolo.Read())
	if got != primary {
		t.Fatalf("a read whose session the node ended ran on %q, want the primary %q", got, primary)
	}
	// The node is out until a check passes, which the fallback asks for
	// at once: here it passes (only a session ended), so no assertion on
	// ReadNodes.
}

// Routing rule 7: a root COMMIT under WithReadYourWrites reads the WAL
// position in its own pipeline (TestRoundTrips counts the round trips), a
// write outside a transaction (Exec, the Querier's QueryRow) reads it
// after; reads, failed writes, rollbacks and failed Atomics record
// nothing; without the context the position query is never sent.
func TestRoutingRule7CommitPositionRidesWithCommit(t *testing.T) {
	t.Parallel()
	tracer := &memTracer{node: "primary"}
	e := newEngine(t, true, piccolo.PostgresConfig{Tracer: tracer})
	table := newTable(t, e)
	ctx := context.Background()
	if err := e.Transaction(ctx, func(ctx context.Context) error { return insert(ctx, e, table, "untracked") }); err != nil {
		t.Fatal(err)
	}
	if s := strings.Join(tracer.statements(), "\n"); strings.Contains(s, "pg_current_wal_insert_lsn") {
		t.Fatalf("the position was read without WithReadYourWrites:\n%s", s)
	}
	rctx := piccolo.WithReadYourWrites(ctx)
	var positions []piccolo.LSN
	for i := range 2 {
		if err := e.Transaction(rctx, func(ctx context.Context) error { return insert(ctx, e, table, fmt.Sprintf("tracked%d", i)) }); err != nil {
			t.Fatal(err)
		}
		positions = append(positions, piccolo.ReadAfter(rctx))
	}
	a := e.Atomic().Add(piccolo.Raw("INSERT INTO " + table + " (name) VALUES ('atomic')"))
	if err := a.Run(rctx); err != nil {
		t.Fatal(err)
	}
	positions = append(positions, piccolo.ReadAfter(rctx))
	mustInsert(t, rctx, e, table, "autocommit")
	positions = append(positions, piccolo.ReadAfter(rctx))
	var id int32
	if err := e.Querier().QueryRow(rctx, "INSERT INTO "+table+" (name) VALUES ('querier') RETURNING id").Scan(&id); err != nil {
		t.Fatal(err)
	}
	positions = append(positions, piccolo.ReadAfter(rctx))
	for i := 1; i < len(positions); i++ {
		if positions[0] == 0 || positions[i] <= positions[i-1] {
			t.Fatalf("positions after three commits, an Exec and a Querier write outside a transaction: %v, want them rising", positions)
		}
	}
	last := positions[len(positions)-1]
	_ = ranOn(t, rctx, e, piccolo.Read())
	if err := e.Querier().QueryRow(piccolo.WithRead(rctx), "SELECT 1").Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Exec(rctx, piccolo.Querystring{SQL: "INSERT INTO " + table + " (name) VALUES ('autocommit')"}); err == nil {
		t.Fatal("the duplicate INSERT succeeded")
	}
	// A rollback records nothing.
	_ = e.Transaction(rctx, func(ctx context.Context) error {
		_ = insert(ctx, e, table, "rolled back")
		return errors.New("no")
	})
	// A failed Atomic neither: the second run, described, goes in one
	// pipeline with its COMMIT and the position read.
	for range 2 {
		if err := e.Atomic().Add(piccolo.Raw("INSERT INTO " + table + " (name) VALUES ('atomic')")).Run(rctx); !isUniqueViolation(err) {
			t.Fatalf("a duplicate INSERT in an Atomic: %v", err)
		}
	}
	if got := piccolo.ReadAfter(rctx); got != last {
		t.Fatalf("a read, a failed write, a rollback or a failed Atomic moved the position from %v to %v", last, got)
	}
	if s := strings.Join(tracer.statements(), "\n"); strings.Count(s, "pg_current_wal_insert_lsn") != 5 {
		t.Fatalf("want the position read after each of 5 writes; statements:\n%s", s)
	}
}

// WithReadAfter raises the position a context carries and never lowers it;
// LSN reads and writes PostgreSQL's notation.
func TestReadAfterPosition(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if piccolo.ReadAfter(ctx) != 0 {
		t.Fatal("a plain context carries a position")
	}
	a := piccolo.WithReadAfter(ctx, 0x16B374D848)
	if b := piccolo.WithReadAfter(a, 5); b != a || piccolo.ReadAfter(a) != 0x16B374D848 {
		t.Fatalf("a lower position replaced %v", piccolo.ReadAfter(a))
	}
	piccolo.WithReadAfter(a, 0x17000000000)
	if piccolo.ReadAfter(a) != 0x17000000000 {
		t.Fatalf("a higher position did not raise it: %v", piccolo.ReadAfter(a))
	}
	if s := piccolo.LSN(0x16B374D848).String(); s != "16/B374D848" {
		t.Fatalf("String: %q", s)
	}
	for _, bad := range []string{"", "16", "16/", "/1", "x/1", "1/123456789", "-1/2"} {
		if _, err := piccolo.ParseLSN(bad); err == nil {
			t.Errorf("ParseLSN(%q) succeeded", bad)
		}
	}
}

// Discover's configuration errors come back from NewPostgresEngine.
func TestReadRoutingDiscoverConfig(t *testing.T) {
	t.Parallel()
	for _, rr := range []piccolo.ReadRouting{
		{Hosts: []string{"db2"}},
		{Discover: true, Hosts: []string{"db2:x"}},
		{Discover: true, Hosts: []string{"db2:0"}},
		{Discover: true, Hosts: []string{":5432"}},
	} {
		if _, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{DSN: "postgres://127.0.0.1/x", ReadRouting: &rr}); err == nil {
			t.Errorf("ReadRouting %+v accepted", rr)
		}
	}
	e, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{
		DSN:         "postgres://u@db1:6000,db2,db3:6002/x?target_session_attrs=read-write",
		ReadRouting: &piccolo.ReadRouting{Discover: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range e.ReadNodes() {
		names = append(names, n.Name)
	}
	if got := strings.Join(names, " "); got != "db1:6000 db2:5432 db3:6002" {
		t.Fatalf("discovered hosts %q", got)
	}
}

// Discover over Hosts: a primary among them is no candidate, a host that
// does not answer is none; reads run on the primary; Close stops the checks
// and leaves no goroutine.
func TestReadRoutingDiscoverHostsAndClose(t *testing.T) {
	// Not parallel: it checks goroutines itself, last (after the proxy's
	// cleanup).
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	dsn, app := faultAppName(t)
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	up := net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	down := startFaultProxy(t, dsn)
	down.setRefuse(true)
	downHost := strings.Split(strings.Split(down.proxiedDSN(t, dsn), "@")[1], "/")[0]
	logger, logs := newLogger()
	e, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{
		DSN:         dsn,
		Logger:      logger,
		ReadRouting: &piccolo.ReadRouting{Discover: true, Hosts: []string{up, downHost}, CheckInterval: 20 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.StartConnectionPool(ctx); err != nil {
		t.Fatal(err)
	}
	nodes := e.ReadNodes()
	if len(nodes) != 2 || !nodes[0].Answered || nodes[0].Standby || nodes[0].Routed || nodes[1].Answered || nodes[1].Routed {
		t.Fatalf("ReadNodes: %+v, want the primary answering unrouted and the down host", nodes)
	}
	if got := ranOn(t, ctx, e, piccolo.Read()); got != app {
		t.Fatalf("a read ran on %q, want the primary %q", got, app)
	}
	if l := logs.String(); !strings.Contains(l, "node="+downHost) || strings.Contains(l, "node="+up) {
		t.Errorf("want a warning naming the down host only; logs:\n%s", l)
	}
	e.Close()
	if _, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT 1"}, piccolo.Read()); !errors.Is(err, piccolo.ErrEngineClosed) {
		t.Fatalf("a read after Close: %v", err)
	}
}

// Routing rule 7, for a Batch: a Batch run as a read (Read) under
// WithReadYourWrites records no position, as any read (on a standby its
// position read would fail and send every later read to the primary); the
// COMMIT that ends its own transaction reads none.
func TestRoutingRule7BatchReadRecordsNoPosition(t *testing.T) {
	t.Parallel()
	tracer := &memTracer{node: "primary"}
	e := newEngine(t, true, piccolo.PostgresConfig{Tracer: tracer})
	table := newTable(t, e)
	ctx := context.Background()
	rctx := piccolo.WithReadYourWrites(ctx)
	mustInsert(t, ctx, e, table, "moves the WAL") // not under rctx
	b, err := e.Batch(rctx, piccolo.Raw("SELECT g FROM generate_series(1, 5) AS g"), piccolo.Read())
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range b.All(rctx) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := piccolo.ReadAfter(rctx); got != 0 {
		t.Fatalf("a Batch read recorded position %v", got)
	}
	if s := strings.Join(tracer.statements(), "\n"); strings.Contains(s, "pg_current_wal_insert_lsn") {
		t.Fatalf("a Batch read read the position:\n%s", s)
	}
}
