package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/internal/pgcluster"
	"github.com/piccolo-go/piccolo/pgtest"
)

// recovered proves the engine works at once after a fault that ended the
// sessions of its idle connections: the first insert succeeds (the engine
// sets aside, before sending anything, a connection whose session had
// ended, and takes a fresh one).
func recovered(t testing.TB, e *piccolo.PostgresEngine, table string) {
	t.Helper()
	mustInsert(t, context.Background(), e, table, fmt.Sprint("recovered ", tableSeq.Add(1)))
}

// Scenario 10: a server restarted under an idle pool, and under a batch
// that is streaming. Committed data survives (synchronous_commit on).
func TestFaultServerRestart(t *testing.T) {
	t.Parallel()
	bg := context.Background()
	c, err := pgcluster.Start(bg, pgcluster.Options{Settings: map[string]string{"synchronous_commit": "on"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	const maxConns = 3
	e := newEngine(t, true, piccolo.PostgresConfig{DSN: c.DSN(""), MaxConns: maxConns})
	table := newTable(t, e)
	mustInsert(t, bg, e, table, "committed before the restart")
	warmPool(t, e, maxConns)

	// Idle.
	start := time.Now()
	if err := c.Restart(bg); err != nil {
		t.Fatal(err)
	}
	recovered(t, e, table)
	t.Logf("idle restart and recovery took %v", time.Since(start))
	if got := names(t, e, table); len(got) == 0 || got[0] != "committed before the restart" {
		t.Fatalf("rows after the restart: %v", got)
	}
	faultStillWorks(t, e, table)

	// Streaming.
	b, err := e.Batch(bg, seriesQuery(100000), piccolo.BatchSize(100))
	if err != nil {
		t.Fatal(err)
	}
	if rows, err := b.Next(bg); err != nil || len(rows) != 100 {
		t.Fatalf("first batch: %d rows, %v", len(rows), err)
	}
	if err := c.Restart(bg); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Next(bg); err == nil {
		t.Fatal("Next after the server restarted succeeded")
	} else {
		t.Logf("Next after the restart: %v", err)
	}
	if _, err := b.Next(bg); !errors.Is(err, piccolo.ErrBatchClosed) {
		t.Fatalf("Next after the failed one: %v, want ErrBatchClosed", err)
	}
	if err := b.Close(bg); err != nil {
		t.Fatalf("Close after the failure: %v", err)
	}
	assertNoBorrowed(t, e)
	recovered(t, e, table)
	faultStillWorks(t, e, table)
}

// Scenario 11, beyond TestReplicaReadRouting (a replica that dies for
// good): a replica that goes down is left alone, and once it answers again
// the health checks bring it back and reads use it again. The "replica" is
// another database reached through a proxy that can play dead: routing
// does not care whether a node is in recovery.
func TestFaultReplicaComesBack(t *testing.T) {
	t.Parallel()
	bg := context.Background()
	replicaDB := pgtest.NewDatabase(t)
	proxy := startFaultProxy(t, replicaDB)
	replica := newEngine(t, false, piccolo.PostgresConfig{DSN: proxy.proxiedDSN(t, replicaDB)})
	primary := newEngine(t, false, piccolo.PostgresConfig{
		ExtraNodes:  map[string]*piccolo.PostgresEngine{"r1": replica},
		ReadRouting: &piccolo.ReadRouting{CheckInterval: 50 * time.Millisecond},
	})
	if err := primary.StartConnectionPool(bg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(primary.Close)
	primaryName := scalar[string](t, bg, primary, "SELECT current_database()")
	replicaName := scalar[string](t, bg, replica, "SELECT current_database()")
	where := func() (string, error) {
		rows, err := primary.RunQuerystring(bg, piccolo.Querystring{SQL: "SELECT current_database() AS db"}, piccolo.Read())
		if err != nil {
			return "", err
		}
		return rows[0]["db"].(string), nil
	}
	readsGoTo := func(want string) (errs int) {
		t.Helper()
		eventually(t, "reads routed to "+want, func() error {
			got, err := where()
			if err != nil {
				errs++
				return err
			}
			if got != want {
				return fmt.Errorf("read ran on %s", got)
			}
			return nil
		})
		return errs
	}
	readsGoTo(replicaName)

	// The replica goes down under a routed read: the read runs again on
	// the primary, and the caller sees no error; with rows or without.
	const sleeping = "SELECT current_database() AS db, pg_sleep(0.5)"
	for _, rows := range []bool{true, false} {
		proxy.setRefuse(false)
		readsGoTo(replicaName)
		dropped := make(chan error, 1)
		go func() {
			dropped <- pollFor(bg, primary, "SELECT count(*) = 1 AS found FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND query = $2", replicaName, sleeping)
			proxy.setRefuse(true)
		}()
		var got []map[string]any
		var err error
		if rows {
			got, err = primary.RunQuerystring(bg, piccolo.Querystring{SQL: sleeping}, piccolo.Read())
		} else {
			_, err = primary.Exec(bg, piccolo.Querystring{SQL: sleeping}, piccolo.Read())
		}
		if err := <-dropped; err != nil {
			t.Fatal(err)
		}
		if err != nil || rows && got[0]["db"] != primaryName {
			t.Fatalf("routed read (rows %v) whose replica went down while it ran: %v, %v; want it run on the primary", rows, got, err)
		}
	}
	errs := readsGoTo(primaryName)
	t.Logf("%d routed reads failed before routing left the dead replica", errs)
	for range 20 { // stays on the primary while the replica is down
		if got, err := where(); err != nil || got != primaryName {
			t.Fatalf("read with the replica down: %s, %v", got, err)
		}
	}
	if _, err := primary.RunQuerystring(bg, piccolo.Querystring{SQL: "SELECT 1"}, piccolo.OnNode("r1")); err == nil {
		t.Fatal("OnNode(r1) succeeded with the replica down")
	}

	proxy.setRefuse(false)
	readsGoTo(replicaName)
	assertNoBorrowed(t, primary)
	assertNoBorrowed(t, replica)
	faultStillWorks(t, primary, "")
}

// pollFor runs the one-row query sql (a boolean column "found") on e until it
// is true, for at most 10 seconds.
func pollFor(ctx context.Context, e *piccolo.PostgresEngine, sql string, args ...any) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		rows, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: sql, Args: args})
		if err != nil {
			return err
		}
		if rows[0]["found"] == true {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not found within 10s: %s", sql)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Scenario 14: a batch whose FETCH is cancelled while the server is still
// producing rows returns at once and gives its connection back.
// (TestBatchCloseAndEarlyBreak and TestBatchCancelledMidStream cover a
// break out of All and a cancel between two Next calls.)
func TestFaultBatchCancelledDuringFetch(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{MaxConns: 2})
	bg := context.Background()
	// Each row takes 50ms: a FETCH of 100 rows takes 5s.
	b, err := e.Batch(bg, piccolo.Raw("SELECT g, pg_sleep(0.05) FROM generate_series(1, 1000) g"), piccolo.BatchSize(100))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bg, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = b.Next(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("FETCH past its deadline: %v", err)
	}
	if d := time.Since(start); d > 200*time.Millisecond+time.Second {
		t.Fatalf("FETCH returned %v after a 200ms deadline", d)
	}
	if _, err := b.Next(bg); !errors.Is(err, piccolo.ErrBatchClosed) {
		t.Fatalf("Next after the cancelled one: %v, want ErrBatchClosed", err)
	}
	if err := b.Close(bg); err != nil {
		t.Fatal(err)
	}
	faultStillWorks(t, e, "")
}
