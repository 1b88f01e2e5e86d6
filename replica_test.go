package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/internal/pgcluster"
)

// replicaPair is a primary and a hot standby streaming from it, both
// throw-away clusters of the test's own.
type replicaPair struct {
	primary, standby *pgcluster.Cluster
}

func newReplicaPair(t *testing.T) replicaPair {
	t.Helper()
	ctx := context.Background()
	primary, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatalf("start primary: %v", err)
	}
	t.Cleanup(func() { _ = primary.Stop(context.Background()) })
	standby, err := pgcluster.StartStandby(ctx, primary, pgcluster.Options{})
	if err != nil {
		t.Fatalf("start standby: %v", err)
	}
	t.Cleanup(func() { _ = standby.Stop(context.Background()) })
	return replicaPair{primary: primary, standby: standby}
}

// engines returns a started primary engine with the standby as node "r1".
func (p replicaPair) engines(t *testing.T, routing *piccolo.ReadRouting) (primary, replica *piccolo.PostgresEngine) {
	t.Helper()
	replica = newEngine(t, false, piccolo.PostgresConfig{DSN: p.standby.DSN("postgres")})
	primary = newEngine(t, false, piccolo.PostgresConfig{
		DSN:         p.primary.DSN("postgres"),
		ExtraNodes:  map[string]*piccolo.PostgresEngine{"r1": replica},
		ReadRouting: routing,
	})
	if err := primary.StartConnectionPool(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(primary.Close)
	return primary, replica
}

func TestReplicaOnNode(t *testing.T) {
	t.Parallel()
	pair := newReplicaPair(t)
	e, _ := pair.engines(t, nil)
	ctx := context.Background()
	if err := e.RunDDL(ctx, "CREATE TABLE band (name text)"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Exec(ctx, piccolo.Querystring{SQL: "INSERT INTO band VALUES ($1)", Args: []any{"Pythonistas"}}); err != nil {
		t.Fatal(err)
	}
	onReplica := piccolo.OnNode("r1")
	if !scalarOn[bool](t, ctx, e, "SELECT pg_is_in_recovery()", onReplica) {
		t.Fatal("OnNode(r1) ran on a server that is not in recovery")
	}
	if scalarOn[bool](t, ctx, e, "SELECT pg_is_in_recovery()") {
		t.Fatal("the primary is in recovery")
	}
	// The committed row reaches the replica once replayed.
	eventually(t, "row replicated", func() error {
		rows, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT name FROM band"}, onReplica)
		if err != nil {
			return err
		}
		if len(rows) != 1 || rows[0]["name"] != "Pythonistas" {
			return errors.New("not yet")
		}
		return nil
	})
	// Batches run on the node too.
	b, err := e.Batch(ctx, piccolo.Raw("SELECT pg_is_in_recovery() AS r"), onReplica)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := b.Next(ctx)
	if err != nil || len(rows) != 1 || rows[0]["r"] != true {
		t.Fatalf("batch on node: %v %v", rows, err)
	}
	// A write sent to the replica fails with PostgreSQL's read-only error.
	_, err = e.Exec(ctx, piccolo.Querystring{SQL: "INSERT INTO band VALUES ('x')"}, onReplica)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "25006" || !strings.Contains(err.Error(), `node "r1"`) {
		t.Fatalf("write on the replica: %v, want 25006 naming the node", err)
	}
}

func TestReplicaReadRouting(t *testing.T) {
	t.Parallel()
	pair := newReplicaPair(t)
	e, _ := pair.engines(t, &piccolo.ReadRouting{CheckInterval: 100 * time.Millisecond})
	ctx := context.Background()
	read := piccolo.Read()

	if !scalarOn[bool](t, ctx, e, "SELECT pg_is_in_recovery()", read) {
		t.Fatal("a routed read did not go to the replica")
	}
	if scalarOn[bool](t, ctx, e, "SELECT pg_is_in_recovery()") {
		t.Fatal("a statement without Read went to the replica")
	}
	err := e.Transaction(ctx, func(ctx context.Context) error {
		if scalarOn[bool](t, ctx, e, "SELECT pg_is_in_recovery()", read) {
			t.Error("a read inside a transaction went to the replica")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Batch(ctx, piccolo.Raw("SELECT pg_is_in_recovery() AS r"), read)
	if err != nil {
		t.Fatal(err)
	}
	if rows, err := b.Next(ctx); err != nil || rows[0]["r"] != true {
		t.Fatalf("routed batch: %v %v", rows, err)
	}

	// A dead replica: routed reads fall back to the primary at once, explicit
	// OnNode reads fail fast, and the primary is not affected.
	if err := pair.standby.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if scalarOn[bool](t, ctx, e, "SELECT pg_is_in_recovery()", read) {
		t.Fatal("a routed read reached a stopped replica")
	}
	b, err = e.Batch(ctx, piccolo.Raw("SELECT pg_is_in_recovery() AS r"), read)
	if err != nil {
		t.Fatalf("routed batch with the replica down: %v", err)
	}
	if rows, err := b.Next(ctx); err != nil || rows[0]["r"] != false {
		t.Fatalf("routed batch with the replica down: %v %v", rows, err)
	}
	start := time.Now()
	_, err = e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT 1"}, piccolo.OnNode("r1"))
	if err == nil || !strings.Contains(err.Error(), `node "r1"`) {
		t.Fatalf("OnNode on a stopped replica: %v, want an error naming the node", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("OnNode on a stopped replica took %v", d)
	}
	if err := e.RunDDL(ctx, "CREATE TABLE still_fine (id int)"); err != nil {
		t.Fatalf("primary after the replica died: %v", err)
	}
}

func TestReplicaMaxLagSkipsLaggingReplica(t *testing.T) {
	t.Parallel()
	pair := newReplicaPair(t)
	e, replica := pair.engines(t, &piccolo.ReadRouting{MaxLag: 200 * time.Millisecond, CheckInterval: 50 * time.Millisecond})
	ctx := context.Background()
	if err := e.RunDDL(ctx, "CREATE TABLE ticks (n int)"); err != nil {
		t.Fatal(err)
	}
	if !scalarOn[bool](t, ctx, e, "SELECT pg_is_in_recovery()", piccolo.Read()) {
		t.Fatal("a caught-up replica is not used")
	}
	// Pause replay on the replica while the primary keeps writing.
	if err := replica.RunDDL(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "lagging replica skipped", func() error {
		if _, err := e.Exec(ctx, piccolo.Querystring{SQL: "INSERT INTO ticks VALUES (1)"}); err != nil {
			return err
		}
		if scalarOn[bool](t, ctx, e, "SELECT pg_is_in_recovery()", piccolo.Read()) {
			rows, err := replica.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT pg_is_wal_replay_paused() AS paused, pg_last_wal_receive_lsn()::text AS recv, pg_last_wal_replay_lsn()::text AS replay, now() - pg_last_xact_replay_timestamp() AS age"})
			return fmt.Errorf("reads still go to the lagging replica: %v %v", rows, err)
		}
		return nil
	})
	if err := replica.RunDDL(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "replica back after catching up", func() error {
		if !scalarOn[bool](t, ctx, e, "SELECT pg_is_in_recovery()", piccolo.Read()) {
			return errors.New("reads do not return to the replica")
		}
		return nil
	})
}

func TestReadRoutingConfig(t *testing.T) {
	t.Parallel()
	_, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{DSN: "postgres://127.0.0.1/x", ReadRouting: &piccolo.ReadRouting{Nodes: []string{"nope"}}})
	if !errors.Is(err, piccolo.ErrUnknownNode) {
		t.Fatalf("routing to an unknown node: %v", err)
	}
	// Without healthy nodes (pool not started), reads go to the primary.
	e := newEngine(t, false, piccolo.PostgresConfig{ReadRouting: &piccolo.ReadRouting{}})
	if scalarOn[bool](t, context.Background(), e, "SELECT pg_is_in_recovery()", piccolo.Read()) {
		t.Fatal("read routed without a replica")
	}
}

// scalarOn runs a one-value query with options.
func scalarOn[T any](t testing.TB, ctx context.Context, e *piccolo.PostgresEngine, sql string, opts ...piccolo.Option) T {
	t.Helper()
	rows, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: sql}, opts...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	for _, v := range rows[0] {
		return v.(T)
	}
	t.Fatalf("%s: no value", sql)
	panic("unreachable")
}

// Only a failed connection means a node is down. A routed read that fails
// on the client side (pgx refuses its arguments) or on the server fails
// naming the replica, and the replica stays in use: it is neither marked
// down nor is the read sent again to the primary.
func TestReplicaClientErrorLeavesReplicaInUse(t *testing.T) {
	t.Parallel()
	pair := newReplicaPair(t)
	// Checks too rare to run during the test: a replica wrongly marked
	// down stays down.
	e, _ := pair.engines(t, &piccolo.ReadRouting{CheckInterval: time.Hour})
	ctx := context.Background()
	read := piccolo.Read()
	failures := []struct {
		name string
		q    piccolo.Querystring
	}{
		{"unencodable argument", piccolo.Querystring{SQL: "SELECT $1::int AS v", Args: []any{make(chan int)}}},
		{"wrong argument count", piccolo.Querystring{SQL: "SELECT $1::int AS v"}},
		{"server error", piccolo.Querystring{SQL: "SELECT 1/0 AS v"}},
	}
	runs := []struct {
		name string
		run  func(q piccolo.Querystring) error
	}{
		{"RunQuerystring", func(q piccolo.Querystring) error {
			_, err := e.RunQuerystring(ctx, q, read)
			return err
		}},
		{"Exec", func(q piccolo.Querystring) error {
			_, err := e.Exec(ctx, q, read)
			return err
		}},
		{"Batch", func(q piccolo.Querystring) error {
			b, err := e.Batch(ctx, piccolo.Raw(q.SQL, q.Args...), read)
			if err == nil {
				_, err = b.Next(ctx)
				_ = b.Close(ctx)
			}
			return err
		}},
	}
	for _, f := range failures {
		for _, r := range runs {
			t.Run(f.name+"/"+r.name, func(t *testing.T) {
				err := r.run(f.q)
				if err == nil || !strings.Contains(err.Error(), `node "r1"`) {
					t.Fatalf("got %v, want an error naming node r1", err)
				}
				if !scalarOn[bool](t, ctx, e, "SELECT pg_is_in_recovery()", read) {
					t.Fatal("the healthy replica was marked down: reads go to the primary")
				}
			})
		}
	}
}

// A replica that does not answer when StartConnectionPool runs does not
// stop the primary: the primary starts and serves, a warning names the
// node, routed reads go to the primary and OnNode reports the connection
// error. Once the replica answers, a health check brings it in.
func TestReplicaDownAtStartPrimaryServes(t *testing.T) {
	t.Parallel()
	pair := newReplicaPair(t)
	standbyDSN := pair.standby.DSN("postgres")
	proxy := startFaultProxy(t, standbyDSN)
	proxy.setRefuse(true)
	replica := newEngine(t, false, piccolo.PostgresConfig{DSN: proxy.proxiedDSN(t, standbyDSN)})
	logger, logs := newLogger()
	primary := newEngine(t, false, piccolo.PostgresConfig{
		DSN:         pair.primary.DSN("postgres"),
		Logger:      logger,
		ExtraNodes:  map[string]*piccolo.PostgresEngine{"r1": replica},
		ReadRouting: &piccolo.ReadRouting{CheckInterval: 50 * time.Millisecond},
	})
	ctx := context.Background()
	if err := primary.StartConnectionPool(ctx); err != nil {
		t.Fatalf("StartConnectionPool with the replica down: %v", err)
	}
	t.Cleanup(primary.Close)
	if l := logs.String(); !strings.Contains(l, "extra node does not answer") || !strings.Contains(l, "node=r1") {
		t.Errorf("no warning names the replica that did not answer; logs:\n%s", logs)
	}
	if err := primary.RunDDL(ctx, "CREATE TABLE served (id int)"); err != nil {
		t.Fatalf("primary with the replica down at start: %v", err)
	}
	if scalarOn[bool](t, ctx, primary, "SELECT pg_is_in_recovery()", piccolo.Read()) {
		t.Fatal("a routed read reached a replica that is down")
	}
	_, err := primary.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT 1"}, piccolo.OnNode("r1"))
	var connErr *pgconn.ConnectError
	if !errors.As(err, &connErr) || !strings.Contains(err.Error(), `node "r1"`) {
		t.Fatalf("OnNode(r1) with the replica down: %v, want a connection error naming the node", err)
	}

	proxy.setRefuse(false)
	eventually(t, "reads routed to the replica once it answers", func() error {
		if !scalarOn[bool](t, ctx, primary, "SELECT pg_is_in_recovery()", piccolo.Read()) {
			return errors.New("reads still go to the primary")
		}
		return nil
	})
	if !scalarOn[bool](t, ctx, primary, "SELECT pg_is_in_recovery()", piccolo.OnNode("r1")) {
		t.Fatal("OnNode(r1) did not reach the replica once it answered")
	}
	assertNoBorrowed(t, primary)
	assertNoBorrowed(t, replica)
}

// The querier's statements go to a replica only under WithRead, with
// ReadRouting and outside a transaction; Query without the marker (an
// INSERT ... RETURNING) runs on the primary.
func TestReplicaReadRoutingFollowsTheQuerierReadMarker(t *testing.T) {
	t.Parallel()
	pair := newReplicaPair(t)
	e, _ := pair.engines(t, &piccolo.ReadRouting{CheckInterval: 100 * time.Millisecond})
	ctx := context.Background()
	q := e.Querier()
	inRecovery := func(ctx context.Context) bool {
		t.Helper()
		var r bool
		if err := q.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if !inRecovery(piccolo.WithRead(ctx)) {
		t.Fatal("a read marked WithRead did not go to the replica")
	}
	if inRecovery(ctx) {
		t.Fatal("a statement without the marker went to the replica")
	}
	if _, err := q.Exec(ctx, "CREATE TABLE band (id serial, name text)"); err != nil {
		t.Fatal(err)
	}
	var id int32
	if err := q.QueryRow(ctx, "INSERT INTO band (name) VALUES ('x') RETURNING id").Scan(&id); err != nil || id != 1 {
		t.Fatalf("INSERT ... RETURNING through QueryRow: %d %v", id, err)
	}
	err := e.Transaction(ctx, func(ctx context.Context) error {
		if inRecovery(piccolo.WithRead(ctx)) {
			t.Error("a read marked WithRead inside a transaction went to the replica")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
