package piccolo_test

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/pgtest"
)

func TestNewPostgresEngineDoesNoIO(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1: a constructor that connected would fail.
	e, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{DSN: "postgres://postgres@127.0.0.1:1/x?connect_timeout=2"})
	if err != nil {
		t.Fatalf("constructor did I/O or rejected a valid DSN: %v", err)
	}
	_, err = e.RunQuerystring(context.Background(), piccolo.Querystring{SQL: "SELECT 1"})
	if err == nil {
		t.Fatal("query on a closed port succeeded")
	}
	var connErr *pgconn.ConnectError
	if !errors.As(err, &connErr) {
		t.Fatalf("want a *pgconn.ConnectError in the chain, got %T: %v", err, err)
	}
}

func TestNewPostgresEngineRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []piccolo.PostgresConfig{
		{DSN: "postgres://host:notaport/db"},
		{DSN: "postgres://127.0.0.1/db?pool_max_conns=zero"},
		{DSN: "postgres://127.0.0.1/db", MaxConns: -1},
		{DSN: "postgres://127.0.0.1/db", MaxConns: 2, MinConns: 3},
		{DSN: "postgres://127.0.0.1/db", ExtraNodes: map[string]*piccolo.PostgresEngine{"r1": nil}},
	} {
		if _, err := piccolo.NewPostgresEngine(cfg); err == nil {
			t.Errorf("%+v: want an error", cfg)
		}
	}
}

func TestPGEnvironment(t *testing.T) {
	u, err := url.Parse(pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGHOST", u.Hostname())
	t.Setenv("PGPORT", u.Port())
	t.Setenv("PGUSER", u.User.Username())
	t.Setenv("PGDATABASE", strings.TrimPrefix(u.Path, "/"))
	t.Setenv("PGSSLMODE", "disable")
	e, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{})
	if err != nil {
		t.Fatal(err)
	}
	got := scalar[string](t, context.Background(), e, "SELECT current_database()")
	if got != strings.TrimPrefix(u.Path, "/") {
		t.Fatalf("connected to %q, want the PG* database %q", got, u.Path)
	}
}

func TestPoolParametersFromDSN(t *testing.T) {
	t.Parallel()
	dsn := pgtest.DSN(t)
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	// pool_* parameters configure the pool and must not reach the server
	// as settings, on pooled and on one-shot connections.
	e := newEngine(t, false, piccolo.PostgresConfig{DSN: dsn + sep + "pool_max_conns=3"})
	if got := scalar[int32](t, context.Background(), e, "SELECT 1::int4"); got != 1 {
		t.Fatalf("one-shot query: %d", got)
	}
	ctx := context.Background()
	if err := e.StartConnectionPool(ctx); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got := e.Stat().MaxConns(); got != 3 {
		t.Fatalf("MaxConns = %d, want 3 from the DSN", got)
	}
}

func TestConnectionPoolLifecycle(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	e := newEngine(t, false, piccolo.PostgresConfig{Logger: logger, MaxConns: 4})
	ctx := context.Background()
	if e.Stat().TotalConns() > 0 {
		t.Fatal("Stat before the pool started should count no connection")
	}
	if err := e.CloseConnectionPool(ctx); !errors.Is(err, piccolo.ErrNoPool) {
		t.Fatalf("close without a pool: %v, want ErrNoPool", err)
	}
	if err := e.StartConnectionPool(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.StartConnectionPool(ctx); err != nil {
		t.Fatalf("second start: %v", err)
	}
	if !strings.Contains(logs.String(), "already running") {
		t.Fatalf("second start should warn, log: %s", logs)
	}
	if e.Stat().TotalConns() == 0 || e.Stat().MaxConns() != 4 {
		t.Fatalf("pool stats: %+v", e.Stat())
	}
	if got := scalar[int32](t, ctx, e, "SELECT 1::int4"); got != 1 {
		t.Fatal("query on pool")
	}
	if err := e.CloseConnectionPool(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := e.CloseConnectionPool(ctx); !errors.Is(err, piccolo.ErrNoPool) {
		t.Fatalf("second close: %v, want ErrNoPool", err)
	}
	// Without a pool, queries use one-shot connections.
	if got := scalar[int32](t, ctx, e, "SELECT 2::int4"); got != 2 {
		t.Fatal("query after close")
	}
}

func TestCloseConnectionPoolWaitsForBorrowedConnections(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	ctx := context.Background()
	txCtx, tx, err := e.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.RunQuerystring(txCtx, piccolo.Querystring{SQL: "SELECT 1"}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := e.CloseConnectionPool(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close with a borrowed connection: %v, want DeadlineExceeded", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit after close began: %v", err)
	}
}

func TestOneShotConnectionsAreClosed(t *testing.T) {
	t.Parallel()
	e := newEngine(t, false, piccolo.PostgresConfig{})
	ctx := context.Background()
	// Each query outside a pool runs on a new backend.
	first := scalar[int32](t, ctx, e, "SELECT pg_backend_pid()")
	second := scalar[int32](t, ctx, e, "SELECT pg_backend_pid()")
	if first == second {
		t.Fatal("two one-shot queries ran on the same backend")
	}
	// Failing queries close their connection too.
	for range 3 {
		if _, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT no_such_column"}); err == nil {
			t.Fatal("bad query succeeded")
		}
	}
	watcher := newEngine(t, true, piccolo.PostgresConfig{})
	deadline := time.Now().Add(5 * time.Second)
	for {
		alive := scalar[int64](t, ctx, watcher, "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", []int32{first, second})
		if alive == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d one-shot backends still connected", alive)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	e := newEngine(t, false, piccolo.PostgresConfig{})
	ctx := context.Background()
	v, err := e.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	num, err := strconv.Atoi(scalar[string](t, ctx, e, "SHOW server_version_num"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (piccolo.Version{Major: num / 10000, Minor: num % 10000}); v != want {
		t.Fatalf("Version = %v, want %v from server_version_num %d", v, want, num)
	}
}

func TestPrepDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDatabase(t)
	e := newEngine(t, false, piccolo.PostgresConfig{DSN: db, Extensions: []string{"pg_trgm", "uuid-ossp"}})
	if err := e.PrepDatabase(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.PrepDatabase(ctx); err != nil {
		t.Fatalf("second PrepDatabase: %v", err)
	}
	n := scalar[int64](t, ctx, e, "SELECT count(*) FROM pg_extension WHERE extname IN ('pg_trgm', 'uuid-ossp')")
	if n != 2 {
		t.Fatalf("%d of 2 extensions created", n)
	}

	missing := newEngine(t, false, piccolo.PostgresConfig{DSN: db, Extensions: []string{`no_such"extension`}})
	err := missing.PrepDatabase(ctx)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "0A000" {
		t.Fatalf("missing extension: %v, want a PgError 0A000 (feature not supported)", err)
	}

	nul := newEngine(t, false, piccolo.PostgresConfig{DSN: db, Extensions: []string{"a\x00b"}})
	if err := nul.PrepDatabase(ctx); err == nil || !strings.Contains(err.Error(), "NUL") {
		t.Fatalf("NUL in extension name: %v", err)
	}
}

func TestPrepDatabaseWithoutPrivilegeWarns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDatabase(t)
	admin := newEngine(t, false, piccolo.PostgresConfig{DSN: db})
	role := "piccolo_unprivileged"
	_ = admin.RunDDL(ctx, `DROP OWNED BY `+role)
	_ = admin.RunDDL(ctx, `DROP ROLE IF EXISTS `+role)
	if err := admin.RunDDL(ctx, `CREATE ROLE `+role+` LOGIN`); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	logger, logs := newLogger()
	// pg_stat_statements is not a trusted extension: only superusers may create it.
	e := newEngine(t, false, piccolo.PostgresConfig{DSN: u.String(), Extensions: []string{"pg_stat_statements"}, Logger: logger})
	if err := e.PrepDatabase(ctx); err != nil {
		t.Fatalf("missing privilege should warn, not fail: %v", err)
	}
	if !strings.Contains(logs.String(), "insufficient privilege") || !strings.Contains(logs.String(), "level=WARN") {
		t.Fatalf("no warning logged: %s", logs)
	}
}

func TestRunQuerystringAndDDL(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	ctx := context.Background()
	table := newTable(t, e)
	hostile := `'); DROP TABLE x; --`
	mustInsert(t, ctx, e, table, hostile)
	rows, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT id, name, n FROM " + table + " WHERE name = $1", Args: []any{hostile}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0]["name"] != hostile || rows[0]["n"] != int32(0) {
		t.Fatalf("rows = %v", rows)
	}
	if err := e.RunDDL(ctx, "ALTER TABLE "+table+" ADD COLUMN a int; ALTER TABLE "+table+" ADD COLUMN b int"); err != nil {
		t.Fatalf("multi-statement DDL: %v", err)
	}
	rows, err = e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT a, b FROM " + table})
	if err != nil || len(rows) != 1 {
		t.Fatalf("new columns: %v %v", rows, err)
	}
	_, err = e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT * FROM no_such_table"})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42P01" {
		t.Fatalf("missing table: %v, want PgError 42P01", err)
	}
	if !strings.Contains(err.Error(), "no_such_table") {
		t.Fatalf("error should name the statement: %v", err)
	}
}

func TestConcurrentQueriesOnPool(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{MaxConns: 10})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 500)
	for i := range 500 {
		wg.Go(func() {
			rows, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT $1::int AS i", Args: []any{i}})
			if err == nil && rows[0]["i"] != int32(i) {
				err = errors.New("wrong row")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := e.Stat().MaxConns(); got != 10 {
		t.Fatalf("MaxConns %d", got)
	}
	assertNoBorrowed(t, e)
}

func TestCancelledContextFailsFastWithoutIO(t *testing.T) {
	t.Parallel()
	// A closed port: any I/O attempt would report a connection error instead.
	e, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{DSN: "postgres://postgres@127.0.0.1:1/x"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT 1"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("query: %v", err)
	}
	if _, _, err := e.Begin(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("begin: %v", err)
	}
	if err := e.Transaction(ctx, func(context.Context) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("transaction: %v", err)
	}
}

func TestExtraNodes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	replica := newEngine(t, false, piccolo.PostgresConfig{})
	e := newEngine(t, false, piccolo.PostgresConfig{ExtraNodes: map[string]*piccolo.PostgresEngine{"r1": replica}})
	if err := e.StartConnectionPool(ctx); err != nil {
		t.Fatal(err)
	}
	if replica.Stat().TotalConns() == 0 {
		t.Fatal("starting the primary's pool should start the node's")
	}
	table := newTable(t, e)

	_, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT 1"}, piccolo.OnNode("nope"))
	if !errors.Is(err, piccolo.ErrUnknownNode) {
		t.Fatalf("unknown node: %v", err)
	}
	if _, err := e.Batch(ctx, piccolo.Raw("SELECT 1"), piccolo.OnNode("nope")); !errors.Is(err, piccolo.ErrUnknownNode) {
		t.Fatalf("unknown node batch: %v", err)
	}
	if _, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT 1"}, piccolo.OnNode("")); !errors.Is(err, piccolo.ErrUnknownNode) {
		t.Fatalf(`OnNode(""): %v, want ErrUnknownNode rather than the primary`, err)
	}

	// Inside a transaction, OnNode runs on the node, outside the transaction:
	// it cannot see the uncommitted row.
	err = e.Transaction(ctx, func(ctx context.Context) error {
		mustInsert(t, ctx, e, table, "uncommitted")
		n := scalar[int64](t, ctx, e, "SELECT count(*) FROM "+table)
		rows, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT count(*) AS n FROM " + table}, piccolo.OnNode("r1"))
		if err != nil {
			return err
		}
		if n != 1 || rows[0]["n"] != int64(0) {
			t.Errorf("in tx %d rows, on node %v; want 1 and 0", n, rows[0]["n"])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st := replica.Stat(); st.TotalConns() == 0 || st.AcquireCount() == 0 {
		t.Fatal("OnNode query did not use the node's pool")
	}
	if err := e.CloseConnectionPool(ctx); err != nil {
		t.Fatal(err)
	}
	if replica.Stat().TotalConns() > 0 {
		t.Fatal("closing the primary's pool should close the node's")
	}
}
