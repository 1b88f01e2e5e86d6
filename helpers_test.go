package piccolo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/pgtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { pgtest.Main(leakChecked{m}) }

// leakChecked fails a passing run that leaves goroutines behind: every
// engine, pool, batch and transaction must have let go of its own.
type leakChecked struct{ m *testing.M }

func (l leakChecked) Run() int {
	code := l.m.Run()
	if err := stopHACluster(); err != nil {
		fmt.Fprintln(os.Stderr, "stop the HA tests' Patroni cluster:", err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			return 1
		}
	}
	return code
}

// newEngine returns an engine on the package's database; with pooled it
// starts a pool, closed when the test ends.
func newEngine(t testing.TB, pooled bool, cfg piccolo.PostgresConfig) *piccolo.PostgresEngine {
	t.Helper()
	if cfg.DSN == "" {
		cfg.DSN = pgtest.DSN(t)
	}
	e, err := piccolo.NewPostgresEngine(cfg)
	if err != nil {
		t.Fatalf("NewPostgresEngine: %v", err)
	}
	if pooled {
		if err := e.StartConnectionPool(context.Background()); err != nil {
			t.Fatalf("StartConnectionPool: %v", err)
		}
		t.Cleanup(e.Close)
	}
	return e
}

// pooledTable returns a pooled engine on the package's database and a
// table of the test's own (see newTable), both cleaned up when the test ends.
func pooledTable(t testing.TB) (*piccolo.PostgresEngine, string) {
	t.Helper()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	return e, newTable(t, e)
}

var tableSeq atomic.Int64

// newTable creates a table of its own for a test: (id serial, name text
// unique) and returns its quoted name.
func newTable(t testing.TB, e *piccolo.PostgresEngine) string {
	t.Helper()
	base := strings.ToLower(strings.NewReplacer("/", "_", " ", "_", "#", "_").Replace(t.Name()))
	if len(base) > 40 { // PostgreSQL keeps 63 bytes: keep the unique number
		base = base[:40]
	}
	name := fmt.Sprintf(`"t_%s_%d"`, base, tableSeq.Add(1))
	ctx := context.Background()
	if err := e.RunDDL(ctx, "CREATE TABLE "+name+" (id serial PRIMARY KEY, name text UNIQUE, n int NOT NULL DEFAULT 0)"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	t.Cleanup(func() { _ = e.RunDDL(context.Background(), "DROP TABLE IF EXISTS "+name) })
	return name
}

// names returns the table's names in id order.
func names(t testing.TB, e *piccolo.PostgresEngine, table string) []string {
	t.Helper()
	rows, err := e.RunQuerystring(context.Background(), piccolo.Querystring{SQL: "SELECT name FROM " + table + " ORDER BY id"})
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		out = append(out, fmt.Sprint(r["name"]))
	}
	return out
}

// assertRows fails the test unless table holds exactly want's names, in id
// order: none when want is empty.
func assertRows(t testing.TB, e *piccolo.PostgresEngine, table string, want ...string) {
	t.Helper()
	if got := names(t, e, table); !slices.Equal(got, want) {
		t.Fatalf("rows in %s: %v, want %v", table, got, want)
	}
}

func insert(ctx context.Context, e *piccolo.PostgresEngine, table, name string) error {
	_, err := e.Exec(ctx, piccolo.Querystring{SQL: "INSERT INTO " + table + " (name) VALUES ($1)", Args: []any{name}})
	return err
}

func mustInsert(t testing.TB, ctx context.Context, e *piccolo.PostgresEngine, table, name string) {
	t.Helper()
	if err := insert(ctx, e, table, name); err != nil {
		t.Fatalf("insert %q: %v", name, err)
	}
}

// scalar runs a one-value query.
func scalar[T any](t testing.TB, ctx context.Context, e *piccolo.PostgresEngine, sql string, args ...any) T {
	t.Helper()
	rows, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: sql, Args: args})
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		t.Fatalf("%s: want one value, got %v", sql, rows)
	}
	for _, v := range rows[0] {
		out, ok := v.(T)
		if !ok {
			t.Fatalf("%s: value %v is %T", sql, v, v)
		}
		return out
	}
	panic("unreachable")
}

// logBuffer is a slog handler target that tests can read while logging goes on.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// loggedEngine returns a pooled engine on the package's database that logs
// every statement it sends (LogQueries) into the returned buffer.
func loggedEngine(t testing.TB) (*piccolo.PostgresEngine, *logBuffer) {
	t.Helper()
	logger, logs := newLogger()
	return newEngine(t, true, piccolo.PostgresConfig{LogQueries: true, Logger: logger}), logs
}

// assertNoBorrowed fails when the engine's pool still lends connections
// after 2 seconds: the pool destroys a dead connection in the background,
// counting it borrowed until then.
func assertNoBorrowed(t testing.TB, e *piccolo.PostgresEngine) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		s := e.Stat()
		if s.AcquiredConns() == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still borrowed after 2s", s.AcquiredConns())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// eventually retries check until it returns nil or 10 seconds pass.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitRunning waits until a backend runs sql, as pg_stat_activity shows:
// the statement then holds its connection. sql should be unique to the
// test (a comment naming it will do), as tests run in parallel.
func waitRunning(t *testing.T, watcher *piccolo.PostgresEngine, sql string) {
	t.Helper()
	eventually(t, "a backend running "+sql, func() error {
		if n := scalar[int64](t, context.Background(), watcher, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = $1", sql); n == 0 {
			return errors.New("not running yet")
		}
		return nil
	})
}

// mustBegin begins a transaction on e and rolls it back when the test ends
// (a no-op once it has ended).
func mustBegin(t testing.TB, e *piccolo.PostgresEngine) (context.Context, *piccolo.PostgresTransaction) {
	t.Helper()
	return mustBeginIn(t, context.Background(), e)
}

// mustBeginIn begins a transaction, or a block nested in ctx's, like
// mustBegin.
func mustBeginIn(t testing.TB, ctx context.Context, e *piccolo.PostgresEngine, opts ...piccolo.TxOption) (context.Context, *piccolo.PostgresTransaction) {
	t.Helper()
	ctx, tx, err := e.Begin(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return ctx, tx
}

// mustSavepoint makes a savepoint in tx, named name or, when name is empty,
// generated.
func mustSavepoint(t testing.TB, ctx context.Context, tx *piccolo.PostgresTransaction, name string) *piccolo.Savepoint {
	t.Helper()
	sp, err := tx.Savepoint(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// finishedTxContext returns the context a committed transaction of e ran
// its closure with: a context kept past the end of its transaction.
func finishedTxContext(t testing.TB, e *piccolo.PostgresEngine) context.Context {
	t.Helper()
	var kept context.Context
	if err := e.Transaction(context.Background(), func(ctx context.Context) error {
		kept = ctx
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return kept
}
