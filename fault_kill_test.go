package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
)

// Scenario 1.
func TestFaultBackendTerminatedMidTransaction(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{MaxConns: 2})
	killer := newEngine(t, false, piccolo.PostgresConfig{})
	table := newTable(t, e)
	bg := context.Background()

	// Begin/Commit by hand: the statement after the kill fails, and Commit
	// knows COMMIT never reached a server.
	ctx, tx := mustBegin(t, e)
	mustInsert(t, ctx, e, table, "before the kill")
	pid := scalar[int32](t, ctx, e, "SELECT pg_backend_pid()")
	if !scalar[bool](t, bg, killer, "SELECT pg_terminate_backend($1, 5000)", pid) {
		t.Fatal("backend not terminated")
	}
	err := insert(ctx, e, table, "after the kill")
	var pgErr *pgconn.PgError
	if err == nil || (errors.As(err, &pgErr) && pgErr.Code != pgerrcode.AdminShutdown) {
		t.Fatalf("statement on a terminated backend: %v, want 57P01 or a connection error", err)
	}
	if err := insert(ctx, e, table, "again"); err == nil {
		t.Fatal("a second statement on the dead connection succeeded")
	}
	if err := tx.Commit(ctx); !errors.Is(err, piccolo.ErrCommitRolledBack) || errors.Is(err, piccolo.ErrAmbiguousCommit) {
		t.Fatalf("commit after the connection died: %v, want ErrCommitRolledBack (COMMIT was never sent)", err)
	}
	if tx.Committed() || !tx.RolledBack() {
		t.Fatalf("Committed %v RolledBack %v", tx.Committed(), tx.RolledBack())
	}

	// The same through Transaction: the closure's error comes back.
	err = e.Transaction(bg, func(ctx context.Context) error {
		mustInsert(t, ctx, e, table, "closure before the kill")
		pid := scalar[int32](t, ctx, e, "SELECT pg_backend_pid()")
		scalar[bool](t, bg, killer, "SELECT pg_terminate_backend($1, 5000)", pid)
		return insert(ctx, e, table, "closure after the kill")
	})
	if err == nil {
		t.Fatal("Transaction on a terminated backend succeeded")
	}
	assertRows(t, e, table)
	// The pool replaced both connections.
	if newPid := scalar[int32](t, bg, e, "SELECT pg_backend_pid()"); newPid == pid {
		t.Fatal("the pool handed out the dead backend again")
	}
	faultStillWorks(t, e, table)
}

// terminateBackends terminates the backends of application app (in state,
// if not "") and returns how many it terminated, without waiting for them
// to go: under load new ones keep coming.
func terminateBackends(t testing.TB, watcher *piccolo.PostgresEngine, app, state string) int64 {
	t.Helper()
	return scalar[int64](t, context.Background(), watcher,
		"SELECT count(*) FROM (SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE application_name = $1 AND ($2 = '' OR state = $2)) k", app, state)
}

// killBackends terminates every backend of application app and waits until
// they are gone.
func killBackends(t testing.TB, watcher *piccolo.PostgresEngine, app string) int64 {
	t.Helper()
	killed := terminateBackends(t, watcher, app, "")
	for backends(t, watcher, app, "") > 0 {
		time.Sleep(10 * time.Millisecond)
	}
	return killed
}

// warmPool makes the pool open n connections and leaves them idle.
func warmPool(t testing.TB, e *piccolo.PostgresEngine, n int) {
	t.Helper()
	var txs []*piccolo.PostgresTransaction
	for range n {
		ctx, tx := mustBegin(t, e)
		scalar[int32](t, ctx, e, "SELECT 1")
		txs = append(txs, tx)
	}
	for _, tx := range txs {
		if err := tx.Commit(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// idlePoolKilled starts an engine whose pool holds maxConns idle
// connections, then terminates their backends: every session in the pool
// has ended; it fails the test unless it killed exactly those maxConns
// idle ones. It returns the engine and a table of its own.
func idlePoolKilled(t *testing.T, maxConns int32) (*piccolo.PostgresEngine, string) {
	t.Helper()
	dsn, app := faultAppName(t)
	e := newEngine(t, true, piccolo.PostgresConfig{DSN: dsn, MaxConns: maxConns})
	watcher := newEngine(t, true, piccolo.PostgresConfig{MaxConns: 1})
	table := newTable(t, e)
	warmPool(t, e, int(maxConns))
	if killed := killBackends(t, watcher, app); killed != int64(maxConns) {
		t.Fatalf("killed %d backends, want the %d idle ones", killed, maxConns)
	}
	return e, table
}

// Scenario 9: every idle connection killed. Before sending, the engine sees
// that the server ended a pooled connection's session (its FATAL error is
// waiting in the socket), sets the connection aside and takes another, so
// no caller sees the fault and nothing is sent twice.
func TestFaultIdleConnectionsKilled(t *testing.T) {
	t.Parallel()
	const maxConns = 4
	e, table := idlePoolKilled(t, maxConns)
	bg := context.Background()
	var failures []error
	for i := range maxConns + 1 {
		if err := insert(bg, e, table, fmt.Sprint(i)); err != nil {
			failures = append(failures, err)
		}
	}
	// Whatever happened, the pool has recovered now.
	faultStillWorks(t, e, table)
	if len(failures) > 0 {
		t.Fatalf("%d of %d queries after the idle connections were killed failed; first: %v", len(failures), maxConns+1, failures[0])
	}
}

// Scenario 9, once the dead connections have been idle for more than a
// second: pgxpool's own ping weeds them out, and every query succeeds on
// a fresh connection.
func TestFaultIdleConnectionsKilledThenPinged(t *testing.T) {
	t.Parallel()
	const maxConns = 3
	e, table := idlePoolKilled(t, maxConns)
	// Nothing can say when: the connections must sit idle for pgxpool's
	// one second before it pings them on acquire.
	time.Sleep(1100 * time.Millisecond)
	for i := range maxConns + 1 {
		mustInsert(t, context.Background(), e, table, fmt.Sprint(i))
	}
	faultStillWorks(t, e, table)
}

// Scenario 9 for transactions: the first thing after the idle connections
// were killed is a transaction. Its BEGIN meets the ended session before
// anything of the transaction ran, so the transaction starts again on a
// fresh connection and commits.
func TestFaultIdleConnectionsKilledThenTransaction(t *testing.T) {
	t.Parallel()
	const maxConns = 3
	e, table := idlePoolKilled(t, maxConns)
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		if err := insert(ctx, e, table, "first"); err != nil {
			return err
		}
		return insert(ctx, e, table, "second")
	})
	if err != nil {
		t.Fatalf("transaction after the idle connections were killed: %v", err)
	}
	assertRows(t, e, table, "first", "second")
	faultStillWorks(t, e, table)
}

// Only what provably never reached the server is sent again. A statement
// outside a transaction that pg_terminate_backend ends while it runs has
// run, at least in part (here its nextval): the caller gets the 57P01, and
// the statement does not run a second time, pooled or on a one-shot
// connection, with rows wanted or not.
func TestFaultStatementKilledWhileRunningIsNotRunAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	watcher := newEngine(t, true, piccolo.PostgresConfig{MaxConns: 2})
	for _, pooled := range []bool{true, false} {
		for _, rows := range []bool{true, false} {
			t.Run(fmt.Sprintf("pooled=%v/rows=%v", pooled, rows), func(t *testing.T) {
				dsn, app := faultAppName(t)
				e := newEngine(t, pooled, piccolo.PostgresConfig{DSN: dsn, MaxConns: 1})
				seq := fmt.Sprintf("s_killed_%d", tableSeq.Add(1))
				if err := watcher.RunDDL(ctx, "CREATE SEQUENCE "+seq); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = watcher.RunDDL(context.Background(), "DROP SEQUENCE "+seq) })
				killed := make(chan error, 1)
				go func() { killed <- killOnceSequenceUsed(ctx, watcher, app, seq) }()
				q := piccolo.Querystring{SQL: "SELECT nextval('" + seq + "'), pg_sleep(1.5)"}
				var err error
				if rows {
					_, err = e.RunQuerystring(ctx, q)
				} else {
					_, err = e.Exec(ctx, q)
				}
				if kerr := <-killed; kerr != nil {
					t.Fatal(kerr)
				}
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) || pgErr.Code != pgerrcode.AdminShutdown {
					t.Errorf("statement killed while running: %v, want the 57P01", err)
				}
				if n := scalar[int64](t, ctx, watcher, "SELECT last_value FROM "+seq); n != 1 {
					t.Errorf("nextval ran %d times, want once", n)
				}
				faultStillWorks(t, e, "")
			})
		}
	}
}

// killOnceSequenceUsed waits until the sequence seq has been used, then
// terminates the active backend of application app, and says whether
// exactly one was.
func killOnceSequenceUsed(ctx context.Context, watcher *piccolo.PostgresEngine, app, seq string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		rows, err := watcher.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT is_called FROM " + seq})
		if err != nil {
			return err
		}
		if rows[0]["is_called"] == true {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("the statement did not use the sequence within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	rows, err := watcher.RunQuerystring(ctx, piccolo.Querystring{
		SQL:  "SELECT count(*) AS n FROM (SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE application_name = $1 AND state = 'active') k",
		Args: []any{app},
	})
	if err != nil {
		return err
	}
	if n := rows[0]["n"]; n != int64(1) {
		return fmt.Errorf("terminated %v backends, want the one running the statement", n)
	}
	return nil
}

// Scenario 9, in a transaction whose connection was borrowed (Begin) but
// whose BEGIN was not sent yet when the server ended the session: BEGIN has
// no effect outside its session, so it is sent again on a fresh connection
// and the transaction commits. Warm, the first statement rides in BEGIN's
// pipeline, where the server's FATAL error answers BEGIN and the statement
// never ran.
func TestFaultSessionEndedBeforeBeginStartsAfresh(t *testing.T) {
	t.Parallel()
	for _, warm := range []bool{false, true} {
		t.Run(fmt.Sprintf("warm=%v", warm), func(t *testing.T) {
			t.Parallel()
			dsn, app := faultAppName(t)
			e := newEngine(t, true, piccolo.PostgresConfig{DSN: dsn, MaxConns: 2})
			watcher := newEngine(t, true, piccolo.PostgresConfig{MaxConns: 1})
			table := newTable(t, e)
			bg := context.Background()
			if warm {
				if err := e.Transaction(bg, func(ctx context.Context) error { return insert(ctx, e, table, "warm") }); err != nil {
					t.Fatal(err)
				}
			}
			ctx, tx := mustBegin(t, e)
			if killed := killBackends(t, watcher, app); killed != 1 {
				t.Fatalf("killed %d backends, want the transaction's", killed)
			}
			if err := insert(ctx, e, table, "after the kill"); err != nil {
				t.Fatalf("first statement of the transaction: %v", err)
			}
			if err := tx.Commit(bg); err != nil {
				t.Fatal(err)
			}
			want := []string{"after the kill"}
			if warm {
				want = []string{"warm", "after the kill"}
			}
			assertRows(t, e, table, want...)
			faultStillWorks(t, e, table)
		})
	}
}
