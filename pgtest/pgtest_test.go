package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestMain(m *testing.M) { Main(m) }

// connect opens a connection closed when t ends.
func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect to %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// databaseOf returns the database conn is connected to, and how many tables
// and views it has outside the system schemas.
func databaseOf(t *testing.T, conn *pgx.Conn) (name string, relations int) {
	t.Helper()
	err := conn.QueryRow(t.Context(), `SELECT current_database(), (SELECT count(*) FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%')`).
		Scan(&name, &relations)
	if err != nil {
		t.Fatalf("inspect database: %v", err)
	}
	return name, relations
}

// databaseExists reports whether the server conn is connected to has a
// database called name.
func databaseExists(t *testing.T, conn *pgx.Conn, name string) bool {
	t.Helper()
	var exists bool
	if err := conn.QueryRow(t.Context(), "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatalf("look up database %s: %v", name, err)
	}
	return exists
}

func TestDSNIsTheFreshPackageDatabase(t *testing.T) {
	t.Parallel()
	dsn := DSN(t)
	name, relations := databaseOf(t, connect(t, dsn))
	serverDB := "postgres" // what a throw-away cluster's maintenance connection uses
	if u := os.Getenv("DATABASE_URL"); u != "" {
		cfg, err := pgconn.ParseConfig(u)
		if err != nil {
			t.Fatal(err)
		}
		serverDB = cfg.Database
	}
	if name == serverDB {
		t.Errorf("DSN reaches DATABASE_URL's own database %q", name)
	}
	if !strings.HasPrefix(name, "pgtest_pgtest_") {
		t.Errorf("database %q is not named pgtest_<package>_…", name)
	}
	if relations != 0 {
		t.Errorf("fresh database has %d relations, want 0", relations)
	}
	if again := DSN(t); again != dsn {
		t.Errorf("DSN changed within the package: %q then %q", dsn, again)
	}
}

func TestNewDatabaseIsDistinctAndDropped(t *testing.T) {
	t.Parallel()
	pkgConn := connect(t, DSN(t))
	pkgDB, _ := databaseOf(t, pkgConn)
	var created []string
	for i := range 2 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			conn := connect(t, NewDatabase(t)) // still open at cleanup: the drop must force it
			name, relations := databaseOf(t, conn)
			if name == pkgDB || (len(created) > 0 && name == created[0]) {
				t.Errorf("NewDatabase reused database %q", name)
			}
			if relations != 0 {
				t.Errorf("new database has %d relations, want 0", relations)
			}
			if _, err := conn.Exec(t.Context(), "CREATE TABLE t (id int)"); err != nil {
				t.Fatal(err)
			}
			created = append(created, name)
		})
	}
	if len(created) != 2 {
		t.Fatalf("created %d databases, want 2", len(created))
	}
	for _, name := range created {
		if databaseExists(t, pkgConn, name) {
			t.Errorf("database %s still exists after its test ended", name)
		}
	}
	if !databaseExists(t, pkgConn, pkgDB) {
		t.Errorf("package database %s dropped with a test's database", pkgDB)
	}
}

func TestThrowawayCluster(t *testing.T) {
	t.Parallel()
	e, err := setup(t.Context(), "", "selftest") // as Main does without DATABASE_URL
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	if e.cluster == nil {
		t.Fatal("no throw-away cluster started")
	}
	dataDir, port := e.cluster.DataDir(), e.cluster.Port()
	conn, err := pgx.Connect(t.Context(), e.dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	name, relations := databaseOf(t, conn)
	conn.Close(t.Context())
	if name != e.dbname || !strings.HasPrefix(name, "pgtest_selftest_") || relations != 0 {
		t.Errorf("connected to %q with %d relations, want empty %q", name, relations, e.dbname)
	}
	if want := fmt.Sprintf("@127.0.0.1:%d/%s?sslmode=disable", port, name); !strings.HasSuffix(e.dsn, want) {
		t.Errorf("DSN %q does not end with %q", e.dsn, want)
	}
	if err := e.close(t.Context()); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cluster data %s still exists: %v", dataDir, err)
	}
	if c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
		c.Close()
		t.Errorf("cluster still answers on port %d", port)
	}
}

// fakeM stands for testing.M in run.
type fakeM func() int

func (f fakeM) Run() int { return f() }

func TestRunCleansUp(t *testing.T) {
	t.Parallel()
	watcher := connect(t, DSN(t))
	tests := []struct {
		name     string
		url      string
		run      func(dsn string) int
		wantCode int
		wantErr  string // on stderr
	}{
		{"tests pass", os.Getenv("DATABASE_URL"), func(string) int { return 0 }, 0, ""},
		{"tests fail", os.Getenv("DATABASE_URL"), func(string) int { return 1 }, 1, ""},
		{"TestMain panics", os.Getenv("DATABASE_URL"), func(string) int { panic("boom") }, -1, ""},
		{"server unreachable", "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=5", nil, 1,
			"pgtest: create database pgtest_pgtest_"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r registry
			var dsn string
			m := fakeM(func() int {
				dsn = r.get(t).dsn
				conn, err := pgx.Connect(t.Context(), dsn)
				if err != nil {
					t.Errorf("the database run set up does not answer: %v", err)
				} else {
					conn.Close(t.Context())
				}
				return tt.run(dsn)
			})
			var code int
			var stderr strings.Builder
			panicked := func() (p any) {
				defer func() { p = recover() }()
				code = run(m, tt.url, &r, &stderr)
				return nil
			}()
			if (tt.wantErr == "") != (stderr.Len() == 0) || !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("run wrote %q to stderr, want %q", stderr.String(), tt.wantErr)
			}
			if tt.wantCode == -1 {
				if panicked != "boom" {
					t.Errorf("run recovered %v, want the panic re-raised", panicked)
				}
			} else if code != tt.wantCode || panicked != nil {
				t.Errorf("run = %d (panic %v), want %d", code, panicked, tt.wantCode)
			}
			if r.env != nil {
				t.Error("run left its environment published")
			}
			if dsn == "" {
				return // set up failed, nothing to clean
			}
			if tt.url == "" {
				if conn, err := pgx.Connect(t.Context(), dsn); err == nil {
					conn.Close(t.Context())
					t.Error("throw-away cluster still answers after run")
				}
				return
			}
			cfg, _ := pgconn.ParseConfig(dsn)
			if databaseExists(t, watcher, cfg.Database) {
				t.Errorf("database %s still exists after run", cfg.Database)
			}
		})
	}
}

// fatalRecorder is a testing.TB whose Fatal records instead of stopping.
type fatalRecorder struct {
	testing.TB
	fatal string
}

func (f *fatalRecorder) Helper()           {}
func (f *fatalRecorder) Fatal(args ...any) { f.fatal = fmt.Sprint(args...) }

func TestWithoutMainFailsClearly(t *testing.T) {
	t.Parallel()
	var r registry // what DSN and NewDatabase see when Main never ran
	tb := &fatalRecorder{TB: t}
	if e := r.get(tb); e != nil {
		t.Errorf("get = %v, want nil", e)
	}
	if !strings.Contains(tb.fatal, "pgtest.Main(m)") {
		t.Errorf("Fatal message %q does not say to call pgtest.Main(m)", tb.fatal)
	}
}

func TestWithDatabase(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, dsn string }{
		{"URL with parameters", "postgres://alice:s3cret@db.example:6543/app?sslmode=require&application_name=x"},
		{"postgresql scheme, no database", "postgresql://alice@db.example"},
		{"escaped database", "postgres://alice@db.example/my%2Fdb?sslmode=disable"},
		{"key=value", "host=db.example port=6543 user=alice dbname=app sslmode=disable"},
		{"key=value without dbname", "host=db.example user=alice"},
		{"URL naming its database as a dbname parameter", "postgres://alice@db.example:5432/?dbname=app&sslmode=disable"},
		{"URL naming its database as a database parameter", "postgres://alice@db.example/other?database=app"},
		{"key=value with database and quoted values", "host = db.example database=app password='it\\'s \\\\ secret' application_name='a b'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := withDatabase(tt.dsn, "pgtest_x_0a1b")
			if err != nil {
				t.Fatal(err)
			}
			before, err := pgconn.ParseConfig(tt.dsn)
			if err != nil {
				t.Fatal(err)
			}
			after, err := pgconn.ParseConfig(got)
			if err != nil {
				t.Fatalf("result %q does not parse: %v", got, err)
			}
			if after.Database != "pgtest_x_0a1b" {
				t.Errorf("database = %q, want pgtest_x_0a1b (dsn %q)", after.Database, got)
			}
			if after.Host != before.Host || after.Port != before.Port || after.User != before.User ||
				after.Password != before.Password || (after.TLSConfig == nil) != (before.TLSConfig == nil) ||
				fmt.Sprint(after.RuntimeParams) != fmt.Sprint(before.RuntimeParams) {
				t.Errorf("withDatabase changed more than the database: %q → %q", tt.dsn, got)
			}
		})
	}
}

// TestFreshDatabaseDSNNamesOnlyTheFreshDatabase pins that a DATABASE_URL
// naming a real database in any form (path, ?dbname=, ?database=, dbname=,
// database=) never sends tests there: the DSN handed out reaches the fresh
// database, proven by current_database() on the server.
func TestFreshDatabaseDSNNamesOnlyTheFreshDatabase(t *testing.T) {
	t.Parallel()
	server := current.get(t).serverDSN
	cfg, err := pgconn.ParseConfig(server)
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("postgres://%s@%s:%d", url.QueryEscape(cfg.User), cfg.Host, cfg.Port)
	keyValue := fmt.Sprintf("host=%s port=%d user=%s", cfg.Host, cfg.Port, cfg.User)
	if cfg.Password != "" {
		base = fmt.Sprintf("postgres://%s:%s@%s:%d", url.QueryEscape(cfg.User), url.QueryEscape(cfg.Password), cfg.Host, cfg.Port)
		keyValue += " password=" + quoteKeyValue(cfg.Password)
	}
	for _, dsn := range []string{
		base + "/postgres?sslmode=disable",
		base + "/?dbname=postgres&sslmode=disable",
		base + "/template1?database=postgres&sslmode=disable",
		keyValue + " dbname=postgres sslmode=disable",
		keyValue + " database=postgres sslmode=disable",
	} {
		e, err := setup(t.Context(), dsn, "selftest")
		if err != nil {
			t.Fatalf("setup(%q): %v", dsn, err)
		}
		conn, err := pgx.Connect(t.Context(), e.dsn)
		if err != nil {
			t.Fatalf("connect to %q: %v", e.dsn, err)
		}
		name, _ := databaseOf(t, conn)
		conn.Close(t.Context())
		if name != e.dbname || !strings.HasPrefix(name, "pgtest_selftest_") {
			t.Errorf("DATABASE_URL %q: tests would run in %q, want the fresh %q", dsn, name, e.dbname)
		}
		if err := e.close(t.Context()); err != nil {
			t.Fatalf("close: %v", err)
		}
	}
}

func TestPackageName(t *testing.T) {
	t.Parallel()
	if got := packageName(); got != "pgtest" {
		t.Errorf("packageName() = %q in package pgtest's test binary", got)
	}
}

func TestSSLModeOf(t *testing.T) {
	t.Parallel()
	for dsn, want := range map[string]string{
		"postgres://u@h/db":                        "prefer",
		"postgres://u@h/db?sslmode=disable":        "disable",
		"postgresql://u@h/db?sslmode=verify-full":  "verify-full",
		"host=h dbname=db":                         "prefer",
		"host=h sslmode=require dbname=db":         "require",
		"host=h sslmode='verify-ca' sslmode=allow": "allow",
	} {
		got, err := sslModeOf(dsn)
		if err != nil || got != want {
			t.Errorf("sslModeOf(%q) = %q, %v; want %q", dsn, got, err, want)
		}
	}
}
