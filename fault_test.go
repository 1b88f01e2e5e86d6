package piccolo_test

// Fault injection against a real PostgreSQL: each test breaks something,
// checks what the caller sees, then proves the engine still works and that
// no connection stayed borrowed. The package's TestMain checks goroutines
// at the end; tests that are not parallel also check them on their own.
// RELIABILITY.md lists the outcomes.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/pgtest"
	"go.uber.org/goleak"
)

// faultAppName returns a DSN of the package database whose connections
// carry a unique application_name, so that a test can find (and kill) its
// own backends in pg_stat_activity.
func faultAppName(t testing.TB) (dsn, app string) {
	t.Helper()
	app = fmt.Sprintf("fault_%d_%d", time.Now().UnixNano()%1e9, tableSeq.Add(1))
	dsn = pgtest.DSN(t)
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	if !strings.Contains(dsn, "://") {
		return dsn + " application_name=" + app, app
	}
	return dsn + sep + "application_name=" + app, app
}

// faultStillWorks proves the engine recovered: nothing borrowed, a query
// and a committed transaction succeed.
func faultStillWorks(t testing.TB, e *piccolo.PostgresEngine, table string) {
	t.Helper()
	assertNoBorrowed(t, e)
	ctx := context.Background()
	if got := scalar[int32](t, ctx, e, "SELECT 41 + 1"); got != 42 {
		t.Fatalf("query after the fault: %d", got)
	}
	if table != "" {
		marker := fmt.Sprintf("works-%d", tableSeq.Add(1))
		if err := e.Transaction(ctx, func(ctx context.Context) error { return insert(ctx, e, table, marker) }); err != nil {
			t.Fatalf("transaction after the fault: %v", err)
		}
		if n := scalar[int64](t, ctx, e, "SELECT count(*) FROM "+table+" WHERE name = $1", marker); n != 1 {
			t.Fatalf("row of the transaction after the fault: %d", n)
		}
	}
	assertNoBorrowed(t, e)
}

// backends counts the backends of application app (in state, if not "").
func backends(t testing.TB, watcher *piccolo.PostgresEngine, app, state string) int64 {
	t.Helper()
	return scalar[int64](t, context.Background(), watcher,
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND ($2 = '' OR state = $2)", app, state)
}

// Scenario 1.
func TestFaultBackendTerminatedMidTransaction(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{MaxConns: 2})
	killer := newEngine(t, false, piccolo.PostgresConfig{})
	table := newTable(t, e)
	bg := context.Background()

	// Begin/Commit by hand: the statement after the kill fails, and Commit
	// knows COMMIT never reached a server.
	ctx, tx, err := e.Begin(bg)
	if err != nil {
		t.Fatal(err)
	}
	mustInsert(t, ctx, e, table, "before the kill")
	pid := scalar[int32](t, ctx, e, "SELECT pg_backend_pid()")
	if !scalar[bool](t, bg, killer, "SELECT pg_terminate_backend($1, 5000)", pid) {
		t.Fatal("backend not terminated")
	}
	err = insert(ctx, e, table, "after the kill")
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
	if got := names(t, e, table); len(got) != 0 {
		t.Fatalf("committed rows %v", got)
	}
	// The pool replaced both connections.
	if newPid := scalar[int32](t, bg, e, "SELECT pg_backend_pid()"); newPid == pid {
		t.Fatal("the pool handed out the dead backend again")
	}
	faultStillWorks(t, e, table)
}

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
	if got := names(t, e, table); len(got) != 0 {
		t.Fatalf("committed rows %v", got)
	}
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
	ctx, tx, err := e.Begin(bg)
	if err != nil {
		t.Fatal(err)
	}
	mustInsert(t, ctx, e, table, "lost")
	if err := e.RunDDL(ctx, "SET LOCAL idle_in_transaction_session_timeout = '100ms'"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	err = insert(ctx, e, table, "after the timeout")
	var pgErr *pgconn.PgError
	if err == nil || (errors.As(err, &pgErr) && pgErr.Code != pgerrcode.IdleInTransactionSessionTimeout) {
		t.Fatalf("statement after idle_in_transaction_session_timeout: %v, want 25P03 or a connection error", err)
	}
	if err := tx.Commit(ctx); !errors.Is(err, piccolo.ErrCommitRolledBack) {
		t.Fatalf("commit: %v, want ErrCommitRolledBack", err)
	}
	if got := names(t, e, table); len(got) != 0 {
		t.Fatalf("committed rows %v", got)
	}
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
	ctx, tx, err := e.Begin(bg)
	if err != nil {
		t.Fatal(err)
	}
	mustInsert(t, ctx, e, table, "lost")
	pid := scalar[int32](t, ctx, e, "SELECT pg_backend_pid()")
	t.Cleanup(func() { // whatever happens, no sleeping backend outlives the test
		_, _ = watcher.Exec(bg, piccolo.Querystring{SQL: "SELECT pg_terminate_backend($1)", Args: []any{pid}})
	})
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = e.Exec(short, piccolo.Querystring{SQL: "SELECT pg_sleep(30)"})
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
	if got := names(t, e, table); len(got) != 0 {
		t.Fatalf("committed rows %v", got)
	}
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
	bg := context.Background()

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
	ctx, tx, err := e.Begin(bg)
	if err != nil {
		t.Fatal(err)
	}
	mustInsert(t, ctx, e, table, "kept")
	sent, acquired := written.Load(), e.Stats().AcquireCount()
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
	if n := e.Stats().AcquireCount(); n != acquired {
		t.Errorf("%d connections acquired with a cancelled context", n-acquired)
	}
	// The transaction is intact: it commits what ran before.
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit after cancelled statements: %v", err)
	}
	if got := names(t, e, table); len(got) != 1 || got[0] != "kept" {
		t.Fatalf("rows %v", got)
	}
	faultStillWorks(t, e, table)
}

// cutConn is a net.Conn that, once armed, closes itself right after it
// has written a message containing a pattern (COMMIT): the server gets the
// message, the client never hears the answer.
type cutConn struct {
	net.Conn
	armed *atomic.Pointer[[]byte]
	cut   chan<- struct{}
}

func (c *cutConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if p := c.armed.Load(); p != nil && bytes.Contains(b, *p) && c.armed.CompareAndSwap(p, nil) {
		c.Conn.Close()
		c.cut <- struct{}{}
	}
	return n, err
}

// cutConns installs cutConn as pgx's DialFunc: arm it with the pattern
// after which the connection dies; cut receives once it did.
func cutConns(armed *atomic.Pointer[[]byte], cut chan<- struct{}) func(*pgxpool.Config) {
	return wrapDial(func(conn net.Conn) net.Conn { return &cutConn{Conn: conn, armed: armed, cut: cut} })
}

// Scenario 6: the connection dies after COMMIT was sent. A net.Conn
// wrapper, installed with PostgresConfig.Configure as pgx's DialFunc,
// closes the socket right after writing COMMIT: the server commits, the
// client never hears.
//
// The engine once reported ErrCommitRolledBack here, trusting pgx's
// "safe to retry" on the failed read after COMMIT was written; now, once
// COMMIT was handed to a live connection, only a server error or a
// ROLLBACK tag means rolled back, and anything else is ErrAmbiguousCommit.
func TestFaultConnectionLostAfterCommitSent(t *testing.T) {
	t.Parallel()
	var armed atomic.Pointer[[]byte]
	cut := make(chan struct{}, 1)
	commit := []byte("COMMIT\x00")
	e := newEngine(t, true, piccolo.PostgresConfig{MaxConns: 2, Configure: cutConns(&armed, cut)})
	direct := newEngine(t, false, piccolo.PostgresConfig{})
	table := newTable(t, direct)
	bg := context.Background()

	calls := 0
	err := e.Transaction(bg, func(ctx context.Context) error {
		calls++
		mustInsert(t, ctx, e, table, fmt.Sprint("attempt ", calls))
		armed.Store(&commit)
		return nil
	}, piccolo.Retry(5), piccolo.Isolation(piccolo.Serializable))
	select {
	case <-cut:
	default:
		t.Fatalf("COMMIT never went through the wrapper (err %v)", err)
	}
	// Why it must not be called a rollback, nor retried: the server did
	// commit.
	eventually(t, "the ambiguous commit's row", func() error {
		if got := names(t, direct, table); len(got) != 1 || got[0] != "attempt 1" {
			return fmt.Errorf("rows %v", got)
		}
		return nil
	})
	if !errors.Is(err, piccolo.ErrAmbiguousCommit) {
		t.Fatalf("connection lost after COMMIT was sent: %v, want ErrAmbiguousCommit", err)
	}
	if errors.Is(err, piccolo.ErrCommitRolledBack) || piccolo.IsRetryable(err) {
		t.Fatalf("an ambiguous commit must be neither a rollback nor retryable: %v", err)
	}
	if calls != 1 {
		t.Fatalf("the closure ran %d times: an ambiguous commit was retried", calls)
	}

	// By hand: Commit says the same, and the handle is neither committed
	// nor rolled back.
	ctx, tx, err := e.Begin(bg)
	if err != nil {
		t.Fatal(err)
	}
	mustInsert(t, ctx, e, table, "by hand")
	armed.Store(&commit)
	if err := tx.Commit(ctx); !errors.Is(err, piccolo.ErrAmbiguousCommit) {
		t.Fatalf("Commit: %v, want ErrAmbiguousCommit", err)
	}
	<-cut
	if tx.Committed() || tx.RolledBack() {
		t.Fatalf("after an ambiguous commit: Committed %v RolledBack %v, want neither", tx.Committed(), tx.RolledBack())
	}
	if err := tx.Rollback(bg); !errors.Is(err, piccolo.ErrTransactionDone) {
		t.Fatalf("Rollback after an ambiguous commit: %v, want ErrTransactionDone", err)
	}
	faultStillWorks(t, e, table)
}

// Scenario 7: concurrent transfers under SERIALIZABLE conflict; Retry makes
// every one of them succeed, money is neither created nor lost, and no
// transfer runs more often than Retry allows.
func TestFaultSerializationFailuresUnderLoad(t *testing.T) {
	t.Parallel()
	const (
		accounts  = 4
		initial   = 1000
		workers   = 8
		transfers = 15
		attempts  = 20
	)
	e := newEngine(t, true, piccolo.PostgresConfig{MaxConns: workers})
	bg := context.Background()
	table := fmt.Sprintf(`"accounts_%d"`, tableSeq.Add(1))
	if err := e.RunDDL(bg, "CREATE TABLE "+table+" (id int PRIMARY KEY, balance int NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.RunDDL(bg, "DROP TABLE "+table) })
	if _, err := e.Exec(bg, piccolo.Querystring{SQL: "INSERT INTO " + table + " SELECT g, $1 FROM generate_series(1, $2::int) g", Args: []any{initial, accounts}}); err != nil {
		t.Fatal(err)
	}
	balance := func(ctx context.Context, id int) (int32, error) {
		rows, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT balance FROM " + table + " WHERE id = $1", Args: []any{id}})
		if err != nil {
			return 0, err
		}
		return rows[0]["balance"].(int32), nil
	}
	var total, maxRuns atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers*transfers)
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range transfers {
				from, to := 1+rng.IntN(accounts), 1+rng.IntN(accounts-1)
				if to >= from {
					to++
				}
				amount := int32(1 + rng.IntN(50))
				runs := int64(0)
				err := e.Transaction(bg, func(ctx context.Context) error {
					runs++
					total.Add(1)
					a, err := balance(ctx, from)
					if err != nil {
						return err
					}
					b, err := balance(ctx, to)
					if err != nil {
						return err
					}
					// Read-modify-write: a lost update would break the sum.
					if _, err := e.Exec(ctx, piccolo.Querystring{SQL: "UPDATE " + table + " SET balance = $2 WHERE id = $1", Args: []any{from, a - amount}}); err != nil {
						return err
					}
					_, err = e.Exec(ctx, piccolo.Querystring{SQL: "UPDATE " + table + " SET balance = $2 WHERE id = $1", Args: []any{to, b + amount}})
					return err
				}, piccolo.Isolation(piccolo.Serializable), piccolo.Retry(attempts))
				for {
					m := maxRuns.Load()
					if runs <= m || maxRuns.CompareAndSwap(m, runs) {
						break
					}
				}
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("transfer: %v", err)
		}
	}
	if sum := scalar[int64](t, bg, e, "SELECT sum(balance) FROM "+table); sum != accounts*initial {
		t.Fatalf("sum of balances %d, want %d: money was created or lost", sum, accounts*initial)
	}
	if m := maxRuns.Load(); m > attempts {
		t.Fatalf("a transfer ran %d times with Retry(%d)", m, attempts)
	}
	if n := total.Load(); n <= workers*transfers {
		t.Fatalf("%d runs for %d transfers: no conflict happened, the test proves nothing", n, workers*transfers)
	}
	t.Logf("%d transfers took %d runs, at most %d for one", workers*transfers, total.Load(), maxRuns.Load())
	faultStillWorks(t, e, "")
}

// Scenario 8: an exhausted pool makes callers wait no longer than their
// context or AcquireTimeout, and serves them again once a connection comes
// back.
func TestFaultPoolExhausted(t *testing.T) {
	t.Parallel()
	bg := context.Background()
	for _, tc := range []struct {
		name    string
		timeout time.Duration // AcquireTimeout
		ctx     time.Duration // the caller's deadline
	}{
		{"context deadline", 0, 150 * time.Millisecond},
		{"AcquireTimeout", 150 * time.Millisecond, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, true, piccolo.PostgresConfig{MaxConns: 2, AcquireTimeout: tc.timeout})
			table := newTable(t, e)
			var held []*piccolo.PostgresTransaction
			for range 2 {
				_, tx, err := e.Begin(bg)
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, tx)
			}
			wait := func(what string, call func(ctx context.Context) error) {
				t.Helper()
				ctx := bg
				if tc.ctx > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(bg, tc.ctx)
					defer cancel()
				}
				start := time.Now()
				err := call(ctx)
				if d := time.Since(start); d > 150*time.Millisecond+time.Second || d < 100*time.Millisecond {
					t.Errorf("%s on an exhausted pool returned after %v, want about 150ms", what, d)
				}
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%s on an exhausted pool: %v, want context.DeadlineExceeded", what, err)
				}
			}
			wait("query", func(ctx context.Context) error { return insert(ctx, e, table, "x") })
			wait("Begin", func(ctx context.Context) error { _, _, err := e.Begin(ctx); return err })
			wait("Transaction", func(ctx context.Context) error {
				return e.Transaction(ctx, func(context.Context) error { return nil }, piccolo.Retry(3))
			})
			wait("Batch", func(ctx context.Context) error { _, err := e.Batch(ctx, piccolo.Raw("SELECT 1")); return err })
			wait("Atomic", func(ctx context.Context) error { return e.Atomic().Add(piccolo.Raw("SELECT 1")).Run(ctx) })
			if got := e.Stats().AcquiredConns(); got != 2 {
				t.Fatalf("%d borrowed, want the 2 held", got)
			}
			// One connection back: a waiting caller gets it.
			done := make(chan error, 1)
			go func() { done <- insert(bg, e, table, "after release") }()
			time.Sleep(50 * time.Millisecond)
			if err := held[0].Rollback(bg); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("query waiting for a released connection: %v", err)
			}
			if err := held[1].Rollback(bg); err != nil {
				t.Fatal(err)
			}
			faultStillWorks(t, e, table)
		})
	}
}

// Scenario 8, under load: 100 goroutines x 100 operations never open more
// than MaxConns connections, as the pool and the server both see it.
func TestFaultPoolNeverExceedsMaxConns(t *testing.T) {
	t.Parallel()
	const maxConns, goroutines, ops = 4, 100, 100
	dsn, app := faultAppName(t)
	e := newEngine(t, true, piccolo.PostgresConfig{DSN: dsn, MaxConns: maxConns})
	watcher := newEngine(t, true, piccolo.PostgresConfig{MaxConns: 1})
	table := newTable(t, e)
	bg := context.Background()

	stop := make(chan struct{})
	var sampler sync.WaitGroup
	var maxPool, maxServer atomic.Int64
	sampler.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if n := int64(e.Stats().TotalConns()); n > maxPool.Load() {
				maxPool.Store(n)
			}
			if i%10 == 0 {
				if n := backends(t, watcher, app, ""); n > maxServer.Load() {
					maxServer.Store(n)
				}
			}
		}
	})
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	for g := range goroutines {
		wg.Go(func() {
			for i := range ops {
				var err error
				switch (g + i) % 10 {
				case 0:
					err = e.Transaction(bg, func(ctx context.Context) error {
						_, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT $1::int", Args: []any{i}})
						return err
					})
				case 1:
					var b *piccolo.Batch
					if b, err = e.Batch(bg, seriesQuery(3), piccolo.BatchSize(2)); err == nil {
						for _, err2 := range b.All(bg) {
							err = err2
						}
					}
				case 2:
					if i%20 == 2 {
						err = insert(bg, e, table, fmt.Sprintf("%d-%d", g, i))
					}
				default:
					_, err = e.RunQuerystring(bg, piccolo.Querystring{SQL: "SELECT $1::int", Args: []any{i}})
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d operations failed, first: %v", n, goroutines*ops, firstErr.Load())
	}
	if maxPool.Load() > maxConns || maxServer.Load() > maxConns {
		t.Fatalf("connections: pool saw %d, server saw %d, MaxConns %d", maxPool.Load(), maxServer.Load(), maxConns)
	}
	if maxServer.Load() == 0 {
		t.Fatal("the sampler never saw a backend: application_name did not reach the server")
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
		ctx, tx, err := e.Begin(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		scalar[int32](t, ctx, e, "SELECT 1")
		txs = append(txs, tx)
	}
	for _, tx := range txs {
		if err := tx.Commit(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// Scenario 9: every idle connection killed. Before sending, the engine sees
// that the server ended a pooled connection's session (its FATAL error is
// waiting in the socket), sets the connection aside and takes another, so
// no caller sees the fault and nothing is sent twice.
func TestFaultIdleConnectionsKilled(t *testing.T) {
	t.Parallel()
	const maxConns = 4
	dsn, app := faultAppName(t)
	e := newEngine(t, true, piccolo.PostgresConfig{DSN: dsn, MaxConns: maxConns})
	watcher := newEngine(t, true, piccolo.PostgresConfig{MaxConns: 1})
	table := newTable(t, e)
	bg := context.Background()
	warmPool(t, e, maxConns)
	if killed := killBackends(t, watcher, app); killed != maxConns {
		t.Fatalf("killed %d backends, want the %d idle ones", killed, maxConns)
	}
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
	dsn, app := faultAppName(t)
	e := newEngine(t, true, piccolo.PostgresConfig{DSN: dsn, MaxConns: maxConns})
	watcher := newEngine(t, true, piccolo.PostgresConfig{MaxConns: 1})
	table := newTable(t, e)
	warmPool(t, e, maxConns)
	killBackends(t, watcher, app)
	time.Sleep(1100 * time.Millisecond)
	for i := range maxConns + 1 {
		mustInsert(t, context.Background(), e, table, fmt.Sprint(i))
	}
	faultStillWorks(t, e, table)
}

// Scenario 12: panics in transaction closures (plain, savepoint-nested,
// inside an Atomic's Runner), in scan callbacks and in batch loops give
// every connection back, commit nothing of the panicking block, and leave
// no goroutine behind. (TestTransactionPanicRollsBackAndRepanics and
// TestReviewBatchAllClosesOnPanic cover the plain closure and All.)
func TestFaultPanics(t *testing.T) {
	// Not parallel: it checks goroutines itself.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{DSN: pgtest.DSN(t), MaxConns: 3})
	if err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	if err := e.StartConnectionPool(bg); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	table := newTable(t, e)
	mustPanic := func(what string, fn func()) {
		t.Helper()
		defer func() {
			if p := recover(); p != what {
				t.Errorf("%s: recovered %v, want the panic re-raised", what, p)
			}
		}()
		fn()
	}
	mustPanic("savepoint block", func() {
		_ = e.Transaction(bg, func(ctx context.Context) error {
			mustInsert(t, ctx, e, table, "outer")
			defer func() {
				// The outer block survives its savepoint block's panic.
				p := recover()
				mustInsert(t, ctx, e, table, "outer after panic")
				panic(p)
			}()
			return e.Transaction(ctx, func(ctx context.Context) error {
				mustInsert(t, ctx, e, table, "inner")
				panic("savepoint block")
			}, piccolo.Nesting(piccolo.NestSavepoint))
		})
	})
	mustPanic("scan", func() {
		_ = e.QueryFunc(bg, piccolo.Querystring{SQL: "SELECT 1"}, func(pgx.Rows) error { panic("scan") })
	})
	mustPanic("scan in transaction", func() {
		_ = e.Transaction(bg, func(ctx context.Context) error {
			mustInsert(t, ctx, e, table, "scan tx")
			return e.QueryFunc(ctx, piccolo.Querystring{SQL: "SELECT 1"}, func(pgx.Rows) error { panic("scan in transaction") })
		})
	})
	mustPanic("runner", func() {
		_ = e.Atomic().Add(piccolo.Raw("INSERT INTO "+table+" (name) VALUES ('atomic')"), panicRunner("runner")).Run(bg)
	})
	mustPanic("next loop", func() {
		b, err := e.Batch(bg, seriesQuery(100), piccolo.BatchSize(10))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close(bg)
		for {
			if _, err := b.Next(bg); err != nil {
				t.Fatal(err)
			}
			panic("next loop")
		}
	})
	mustPanic("NextFunc scan", func() {
		b, err := e.Batch(bg, seriesQuery(100), piccolo.BatchSize(10))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close(bg)
		_, _ = b.NextFunc(bg, func(pgx.Rows) error { panic("NextFunc scan") })
	})
	assertNoBorrowed(t, e)
	if got := names(t, e, table); len(got) != 0 {
		t.Fatalf("rows of panicking blocks were committed: %v", got)
	}
	faultStillWorks(t, e, table)
}

// panicRunner is an Atomic step whose logic panics.
type panicRunner string

func (p panicRunner) Querystrings() ([]piccolo.Querystring, error) { return nil, nil }

func (p panicRunner) Run(context.Context, piccolo.Engine) error { panic(string(p)) }

// Scenario 9 for transactions: the first thing after the idle connections
// were killed is a transaction. Its BEGIN meets the ended session before
// anything of the transaction ran, so the transaction starts again on a
// fresh connection and commits.
func TestFaultIdleConnectionsKilledThenTransaction(t *testing.T) {
	t.Parallel()
	const maxConns = 3
	dsn, app := faultAppName(t)
	e := newEngine(t, true, piccolo.PostgresConfig{DSN: dsn, MaxConns: maxConns})
	watcher := newEngine(t, true, piccolo.PostgresConfig{MaxConns: 1})
	table := newTable(t, e)
	warmPool(t, e, maxConns)
	if killed := killBackends(t, watcher, app); killed != maxConns {
		t.Fatalf("killed %d backends, want the %d idle ones", killed, maxConns)
	}
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		if err := insert(ctx, e, table, "first"); err != nil {
			return err
		}
		return insert(ctx, e, table, "second")
	})
	if err != nil {
		t.Fatalf("transaction after the idle connections were killed: %v", err)
	}
	if got := names(t, e, table); !slices.Equal(got, []string{"first", "second"}) {
		t.Fatalf("rows %v", got)
	}
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
// and the transaction commits.
func TestFaultSessionEndedBeforeBeginStartsAfresh(t *testing.T) {
	t.Parallel()
	dsn, app := faultAppName(t)
	e := newEngine(t, true, piccolo.PostgresConfig{DSN: dsn, MaxConns: 2})
	watcher := newEngine(t, true, piccolo.PostgresConfig{MaxConns: 1})
	table := newTable(t, e)
	bg := context.Background()
	ctx, tx, err := e.Begin(bg)
	if err != nil {
		t.Fatal(err)
	}
	if killed := killBackends(t, watcher, app); killed != 1 {
		t.Fatalf("killed %d backends, want the transaction's", killed)
	}
	if err := insert(ctx, e, table, "after the kill"); err != nil {
		t.Fatalf("first statement of the transaction: %v", err)
	}
	if err := tx.Commit(bg); err != nil {
		t.Fatal(err)
	}
	if got := names(t, e, table); !slices.Equal(got, []string{"after the kill"}) {
		t.Fatalf("rows %v", got)
	}
	faultStillWorks(t, e, table)
}
