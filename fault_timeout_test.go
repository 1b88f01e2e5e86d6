package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/piccolo-go/piccolo"
)

// Scenario 2.
func TestFaultStatementTimeoutInTransaction(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{MaxConns: 1})
	table := newTable(t, e)
	bg := context.Background()
	var pid int32
	var stmtErr error
	err := e.Transaction(bg, func(ctx context.Context) error {
		mustInsert(t, ctx, e, table, "lost")
		pid = scalar[int32](t, ctx, e, "SELECT pg_backend_pid()")
		if err := e.RunDDL(ctx, "SET LOCAL statement_timeout = '50ms'"); err != nil {
			return err
		}
		_, stmtErr = e.Exec(ctx, piccolo.Querystring{SQL: "SELECT pg_sleep(5)"})
		return nil // swallowed: COMMIT must not pretend
	})
	var pgErr *pgconn.PgError
	if !errors.As(stmtErr, &pgErr) || pgErr.Code != pgerrcode.QueryCanceled || !strings.Contains(pgErr.Message, "statement timeout") {
		t.Fatalf("statement over statement_timeout: %v, want PostgreSQL's 57014 statement timeout", stmtErr)
	}
	if !errors.Is(err, piccolo.ErrCommitRolledBack) {
		t.Fatalf("commit after a timed-out statement: %v, want ErrCommitRolledBack", err)
	}
	assertRows(t, e, table)
	// The connection survived the timeout and is reused (MaxConns 1), with
	// the SET LOCAL gone.
	if got := scalar[int32](t, bg, e, "SELECT pg_backend_pid()"); got != pid {
		t.Fatalf("backend %d after the timeout, want the same connection %d", got, pid)
	}
	if got := scalar[string](t, bg, e, "SHOW statement_timeout"); got != "0" {
		t.Fatalf("statement_timeout leaked out of the transaction: %s", got)
	}
	faultStillWorks(t, e, table)
}

// Scenario 3.
func TestFaultIdleInTransactionTimeout(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{MaxConns: 2})
	table := newTable(t, e)
	bg := context.Background()
	ctx, tx := mustBegin(t, e)
	mustInsert(t, ctx, e, table, "lost")
	pid := scalar[int32](t, ctx, e, "SELECT pg_backend_pid()")
	if err := e.RunDDL(ctx, "SET LOCAL idle_in_transaction_session_timeout = '100ms'"); err != nil {
		t.Fatal(err)
	}
	// The server ends the session once it has sat idle in the transaction
	// for 100ms: wait until its backend is gone.
	eventually(t, "the idle session ended", func() error {
		if n := scalar[int64](t, bg, e, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid); n != 0 {
			return fmt.Errorf("backend %d still there", pid)
		}
		return nil
	})
	err := insert(ctx, e, table, "after the timeout")
	var pgErr *pgconn.PgError
	if err == nil || (errors.As(err, &pgErr) && pgErr.Code != pgerrcode.IdleInTransactionSessionTimeout) {
		t.Fatalf("statement after idle_in_transaction_session_timeout: %v, want 25P03 or a connection error", err)
	}
	if err := tx.Commit(ctx); !errors.Is(err, piccolo.ErrCommitRolledBack) {
		t.Fatalf("commit: %v, want ErrCommitRolledBack", err)
	}
	assertRows(t, e, table)
	faultStillWorks(t, e, table)
}

// Scenario 4: a context deadline in the middle of a statement returns at
// the deadline and stops the query on the server too: pgx closes the
// connection (its default context handler sets a socket deadline) and its
// asyncClose sends a CancelRequest before the Terminate, so the backend
// leaves pg_sleep and the transaction with its locks is gone.
func TestFaultContextDeadlineMidQuery(t *testing.T) {
	t.Parallel()
	dsn, app := faultAppName(t)
	e := newEngine(t, true, piccolo.PostgresConfig{DSN: dsn, MaxConns: 2})
	watcher := newEngine(t, true, piccolo.PostgresConfig{})
	table := newTable(t, e)
	bg := context.Background()
	ctx, tx := mustBegin(t, e)
	mustInsert(t, ctx, e, table, "lost")
	pid := scalar[int32](t, ctx, e, "SELECT pg_backend_pid()")
	t.Cleanup(func() { // whatever happens, no sleeping backend outlives the test
		_, _ = watcher.Exec(bg, piccolo.Querystring{SQL: "SELECT pg_terminate_backend($1)", Args: []any{pid}})
	})
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.Exec(short, piccolo.Querystring{SQL: "SELECT pg_sleep(30)"})
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("statement past its deadline: %v, want context.DeadlineExceeded", err)
	}
	if took > 200*time.Millisecond+time.Second {
		t.Fatalf("returned %v after a 200ms deadline", took)
	}
	rbErr := tx.Rollback(bg)
	if rbErr != nil && !strings.Contains(rbErr.Error(), "closed") {
		t.Fatalf("rollback after the deadline: %v, want nil or the closed connection", rbErr)
	}
	t.Logf("rollback after the deadline reports: %v", rbErr)
	assertRows(t, e, table)
	assertNoBorrowed(t, e)
	// The query must be gone from the server, not just from the client.
	deadline := time.Now().Add(3 * time.Second)
	for backends(t, watcher, app, "active") > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("3s after the deadline, backend %d still runs the cancelled pg_sleep (query: %v)", pid,
				scalar[string](t, bg, watcher, "SELECT coalesce(max(query), '') FROM pg_stat_activity WHERE pid = $1", pid))
		}
		time.Sleep(50 * time.Millisecond)
	}
	faultStillWorks(t, e, table)
}

// countingConn counts the bytes written to the server.
type countingConn struct {
	net.Conn
	written *atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.written.Add(int64(len(b)))
	return c.Conn.Write(b)
}

// countWrites installs countingConn as pgx's DialFunc.
func countWrites(written *atomic.Int64) func(*pgxpool.Config) {
	return wrapDial(func(conn net.Conn) net.Conn { return &countingConn{Conn: conn, written: written} })
}

// wrapDial wraps every connection pgx dials.
func wrapDial(wrap func(net.Conn) net.Conn) func(*pgxpool.Config) {
	return func(c *pgxpool.Config) {
		dial := c.ConnConfig.DialFunc
		c.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return wrap(conn), nil
		}
	}
}

// Scenario 5, beyond TestCancelledContextFailsFastWithoutIO (queries,
// Begin and Transaction on a closed port): every entry point, and
// statements in a live transaction, fail at once with context.Canceled and
// send nothing.
func TestFaultCancelledContextEverywhere(t *testing.T) {
	t.Parallel()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	// A closed port: any connection attempt would report a connect error.
	dead, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{DSN: "postgres://postgres@127.0.0.1:1/x", Extensions: []string{"pg_trgm"}})
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]func(context.Context) error{
		"Exec": func(ctx context.Context) error {
			_, err := dead.Exec(ctx, piccolo.Querystring{SQL: "SELECT 1"})
			return err
		},
		"RunDDL": func(ctx context.Context) error { return dead.RunDDL(ctx, "CREATE TABLE x (id int)") },
		"QueryFunc": func(ctx context.Context) error {
			return dead.QueryFunc(ctx, piccolo.Querystring{SQL: "SELECT 1"}, func(pgx.Rows) error { return nil })
		},
		"Version":   func(ctx context.Context) error { _, err := dead.Version(ctx); return err },
		"Prep":      dead.PrepDatabase,
		"Batch":     func(ctx context.Context) error { _, err := dead.Batch(ctx, piccolo.Raw("SELECT 1")); return err },
		"Atomic":    func(ctx context.Context) error { return dead.Atomic().Add(piccolo.Raw("SELECT 1")).Run(ctx) },
		"StartPool": dead.StartConnectionPool,
		"Retry": func(ctx context.Context) error {
			return dead.Transaction(ctx, func(context.Context) error { return nil }, piccolo.Retry(5))
		},
		"ReadRouted": func(ctx context.Context) error {
			_, err := dead.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT 1"}, piccolo.Read())
			return err
		},
	}
	for name, call := range calls {
		start := time.Now()
		err := call(cancelled)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v, want context.Canceled before any I/O", name, err)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("%s with a cancelled context took %v", name, d)
		}
	}
	dead.Close()

	// A live transaction: statements with a cancelled context send nothing
	// and do not break the transaction.
	var written atomic.Int64
	e := newEngine(t, true, piccolo.PostgresConfig{Configure: countWrites(&written), MaxConns: 2})
	table := newTable(t, e)
	ctx, tx := mustBegin(t, e)
	mustInsert(t, ctx, e, table, "kept")
	sent, acquired := written.Load(), e.Stat().AcquireCount()
	txCancelled, cancelTx := context.WithCancel(ctx)
	cancelTx()
	if err := insert(txCancelled, e, table, "never sent"); !errors.Is(err, context.Canceled) {
		t.Errorf("statement in a transaction with a cancelled context: %v", err)
	}
	if _, err := tx.Savepoint(txCancelled, "sp"); !errors.Is(err, context.Canceled) {
		t.Errorf("Savepoint with a cancelled context: %v", err)
	}
	if _, err := e.Batch(txCancelled, piccolo.Raw("SELECT 1")); !errors.Is(err, context.Canceled) {
		t.Errorf("Batch in a transaction with a cancelled context: %v", err)
	}
	if err := e.Atomic().Add(piccolo.Raw("SELECT 1")).Run(txCancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("Atomic in a transaction with a cancelled context: %v", err)
	}
	if err := e.Transaction(txCancelled, func(context.Context) error { return nil }, piccolo.Nesting(piccolo.NestSavepoint)); !errors.Is(err, context.Canceled) {
		t.Errorf("nested Transaction with a cancelled context: %v", err)
	}
	if _, err := e.RunQuerystring(cancelled, piccolo.Querystring{SQL: "SELECT 1"}); !errors.Is(err, context.Canceled) {
		t.Errorf("pooled query with a cancelled context: %v", err)
	}
	if n := written.Load(); n != sent {
		t.Errorf("%d bytes sent with a cancelled context", n-sent)
	}
	if n := e.Stat().AcquireCount(); n != acquired {
		t.Errorf("%d connections acquired with a cancelled context", n-acquired)
	}
	// The transaction is intact: it commits what ran before.
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit after cancelled statements: %v", err)
	}
	assertRows(t, e, table, "kept")
	faultStillWorks(t, e, table)
}
