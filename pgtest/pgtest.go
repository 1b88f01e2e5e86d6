// Package pgtest gives each test package a fresh PostgreSQL database of its
// own, so that packages tested in parallel never see each other's tables.
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		dsn := pgtest.DSN(t)           // the package's database
//		other := pgtest.NewDatabase(t) // one more, dropped when t ends
//	}
//
// With DATABASE_URL set, the databases are created on that server (as
// pgtest_<package>_<random>) and dropped at the end; DATABASE_URL's user
// must be allowed to create databases. Without it, Main starts a throw-away
// cluster from the machine's PostgreSQL programs (see internal/pgcluster)
// and removes it at the end.
//
// If the test process crashes (a panic in a test, a -timeout), Go runs no
// cleanup: a throw-away cluster is still removed by its watchdog, but a
// database on DATABASE_URL's server is left behind; its name starts with
// pgtest_.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo/internal/pgcluster"
)

// cleanupTimeout bounds dropping a database and stopping a cluster, which
// must happen even when the test's context has ended.
const cleanupTimeout = time.Minute

// current is the one piece of package state pgtest needs: the test process
// has one package database, set up by Main before the tests run and torn
// down after. DSN and NewDatabase read it from any test goroutine.
var current registry

// registry holds the running environment, guarded by mu.
type registry struct {
	mu  sync.Mutex
	env *env
}

func (r *registry) set(e *env) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.env = e
}

// get returns the environment, failing tb if Main did not set one up.
func (r *registry) get(tb testing.TB) *env {
	tb.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.env == nil {
		tb.Fatal("pgtest: no test database: the package's TestMain must call pgtest.Main(m): " +
			"func TestMain(m *testing.M) { pgtest.Main(m) }")
	}
	return r.env
}

// env is a server with the package's database on it.
type env struct {
	serverDSN string             // maintenance connection: creates and drops databases
	cluster   *pgcluster.Cluster // nil on DATABASE_URL's server
	prefix    string             // pgtest_<package>_
	dbname    string             // the package's database
	dsn       string             // serverDSN pointing at dbname
}

// Main sets up the package's database, runs the tests and exits with their
// status after removing the database (and the cluster, if Main started
// one). Call it from TestMain with the *testing.M, or with a wrapper whose
// Run adds checks of its own (a goroutine leak check, say). If setting up
// fails, no test runs and the process exits with status 1.
//
// Main also points the standard PG* variables (PGHOST, PGPORT, PGUSER,
// PGPASSWORD, PGDATABASE, PGSSLMODE) at the package's database, so that
// code connecting with an empty DSN, examples included, lands there too.
func Main(m interface{ Run() int }) {
	os.Exit(run(m, os.Getenv("DATABASE_URL"), &current, os.Stderr))
}

// run is Main without os.Exit, so that deferred cleanup runs: it publishes
// the environment in r while m runs and reports set-up and clean-up
// failures to stderr.
func run(m interface{ Run() int }, databaseURL string, r *registry, stderr io.Writer) (code int) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	e, err := setup(ctx, databaseURL, packageName())
	cancel()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := setPGEnv(e.dsn); err != nil {
		fmt.Fprintln(stderr, joinClose(err, e))
		return 1
	}
	r.set(e)
	defer func() {
		// A panic on this goroutine (a TestMain's own code) still cleans up;
		// a panic in a test crashes the process, see the package doc.
		p := recover()
		r.set(nil)
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := e.close(ctx); err != nil {
			fmt.Fprintln(stderr, err)
			if code == 0 {
				code = 1
			}
		}
		if p != nil {
			panic(p)
		}
	}()
	return m.Run()
}

// DSN returns the URL (or key=value string, like DATABASE_URL) of the
// package's database, which Main created empty. Tests of a package share it;
// use NewDatabase for one of a test's own.
func DSN(tb testing.TB) string {
	tb.Helper()
	e := current.get(tb)
	if e == nil {
		return "" // only reached when tb.Fatal does not stop the test
	}
	return e.dsn
}

// NewDatabase creates another empty database on the package's server and
// returns its DSN; it is dropped when tb ends, connections still open to it
// included.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	e := current.get(tb)
	if e == nil {
		return ""
	}
	name, dsn, err := e.createDatabase(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := e.dropDatabase(ctx, name); err != nil {
			tb.Error(err)
		}
	})
	return dsn
}

// setup creates the package's database on databaseURL's server, or, if
// databaseURL is "", on a throw-away cluster it starts.
func setup(ctx context.Context, databaseURL, pkg string) (*env, error) {
	e := &env{serverDSN: databaseURL, prefix: "pgtest_" + pkg + "_"}
	if databaseURL == "" {
		c, err := pgcluster.Start(ctx, pgcluster.Options{})
		if err != nil {
			return nil, fmt.Errorf("pgtest: DATABASE_URL is unset, so start a throw-away cluster: %w", err)
		}
		e.cluster, e.serverDSN = c, c.DSN("postgres")
	} else if _, err := pgconn.ParseConfig(databaseURL); err != nil {
		return nil, fmt.Errorf("pgtest: parse DATABASE_URL: %w", err) // pgconn redacts passwords
	}
	var err error
	if e.dbname, e.dsn, err = e.createDatabase(ctx); err != nil {
		return nil, joinClose(err, e)
	}
	return e, nil
}

// sslModeOf returns the sslmode dsn asks for, "prefer" (libpq's and
// pgconn's default) when it names none, so that PGSSLMODE means the same.
func sslModeOf(dsn string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("pgtest: parse the package database's URL: %w", err)
		}
		if m := u.Query().Get("sslmode"); m != "" {
			return m, nil
		}
		return "prefer", nil
	}
	mode := "prefer"
	for _, field := range strings.Fields(dsn) { // the last sslmode= wins
		if v, ok := strings.CutPrefix(field, "sslmode="); ok {
			mode = strings.Trim(v, "'")
		}
	}
	return mode, nil
}

// setPGEnv exports the PG* variables that make an empty DSN mean dsn.
func setPGEnv(dsn string) error {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("pgtest: parse the package database's DSN: %w", err)
	}
	sslmode, err := sslModeOf(dsn)
	if err != nil {
		return err
	}
	for k, v := range map[string]string{
		"PGHOST": cfg.Host, "PGPORT": fmt.Sprint(cfg.Port), "PGUSER": cfg.User,
		"PGPASSWORD": cfg.Password, "PGDATABASE": cfg.Database, "PGSSLMODE": sslmode,
	} {
		if err := os.Setenv(k, v); err != nil {
			return fmt.Errorf("pgtest: set %s: %w", k, err)
		}
	}
	return nil
}

// joinClose tears e down after a failed setup, keeping both errors.
func joinClose(err error, e *env) error {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if cerr := e.close(ctx); cerr != nil {
		return fmt.Errorf("%w (and cleaning up: %w)", err, cerr)
	}
	return err
}

// close drops the package's database, or stops the cluster, which takes
// every database with it.
func (e *env) close(ctx context.Context) error {
	if e.cluster != nil {
		if err := e.cluster.Stop(ctx); err != nil {
			return fmt.Errorf("pgtest: stop throw-away cluster: %w", err)
		}
		return nil
	}
	if e.dbname == "" {
		return nil
	}
	return e.dropDatabase(ctx, e.dbname)
}

// createDatabase creates an empty database with a new unique name and
// returns the name and the DSN reaching it.
func (e *env) createDatabase(ctx context.Context) (name, dsn string, err error) {
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix) // never fails (crypto/rand's documented contract)
	name = e.prefix + hex.EncodeToString(suffix)
	if dsn, err = withDatabase(e.serverDSN, name); err != nil {
		return "", "", err
	}
	if err := e.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", "", fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	return name, dsn, nil
}

// dropDatabase drops database name, ending its connections (PostgreSQL 13+).
func (e *env) dropDatabase(ctx context.Context, name string) error {
	if err := e.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("pgtest: drop database %s: %w", name, err)
	}
	return nil
}

// exec runs sql on a new maintenance connection to the server.
func (e *env) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, e.serverDSN)
	if err != nil {
		return fmt.Errorf("connect to the server: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// withDatabase returns dsn pointing at database name instead, everything
// else (user, host, sslmode and other parameters) kept. dsn is a URL or a
// key=value string; name must need no quoting (pgtest's names do not).
//
// Every other way dsn names a database goes: a URL's dbname or database
// query parameter overrides its path in pgconn, so leaving one behind would
// send the tests, and their DROPs, to the database it names. The result is
// parsed back to prove it reaches name and nothing else.
func withDatabase(dsn, name string) (string, error) {
	var out string
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("pgtest: parse database URL: %w", err)
		}
		q := u.Query()
		for _, key := range databaseKeys {
			q.Del(key)
		}
		u.Path, u.RawPath, u.RawQuery = "/"+name, "", q.Encode()
		out = u.String()
	} else {
		pairs, err := keyValuePairs(dsn)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, p := range pairs {
			if !slices.Contains(databaseKeys, p[0]) {
				fmt.Fprintf(&b, "%s=%s ", p[0], quoteKeyValue(p[1]))
			}
		}
		b.WriteString("dbname=" + name)
		out = b.String()
	}
	cfg, err := pgconn.ParseConfig(out)
	if err != nil {
		return "", fmt.Errorf("pgtest: the DSN for database %s does not parse: %w", name, err)
	}
	if cfg.Database != name {
		return "", fmt.Errorf("pgtest: the DSN for database %s reaches database %q instead; refusing to run tests there", name, cfg.Database)
	}
	return out, nil
}

// databaseKeys are the DSN parameters that name the database.
var databaseKeys = []string{"dbname", "database"}

// keyValuePairs splits a libpq key=value string into its pairs, in order,
// with quotes and backslash escapes resolved as libpq does.
func keyValuePairs(dsn string) ([][2]string, error) {
	var pairs [][2]string
	s := strings.TrimSpace(dsn)
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return nil, fmt.Errorf("pgtest: DATABASE_URL: %q has no '='", s)
		}
		key := strings.TrimSpace(s[:eq])
		s = strings.TrimLeft(s[eq+1:], " \t\n\r")
		var val strings.Builder
		quoted := strings.HasPrefix(s, "'")
		if quoted {
			s = s[1:]
		}
		i := 0
		for ; i < len(s); i++ {
			c := s[i]
			if c == '\\' && i+1 < len(s) {
				i++
				val.WriteByte(s[i])
				continue
			}
			if (quoted && c == '\'') || (!quoted && (c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
				break
			}
			val.WriteByte(c)
		}
		if quoted && i == len(s) {
			return nil, fmt.Errorf("pgtest: DATABASE_URL: unterminated quote in the value of %s", key)
		}
		if i < len(s) {
			i++ // the closing quote or the blank
		}
		pairs = append(pairs, [2]string{key, val.String()})
		s = strings.TrimSpace(s[i:])
	}
	return pairs, nil
}

// quoteKeyValue quotes v for a key=value string.
func quoteKeyValue(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// packageName returns the test binary's package name (go test names the
// binary <package>.test) reduced to lowercase letters, digits and
// underscores, short enough for a database name (at most 63 bytes).
func packageName() string {
	name := strings.TrimSuffix(filepath.Base(os.Args[0]), ".test")
	name = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '_'
	}, name)
	if len(name) > 30 {
		name = name[:30]
	}
	if name == "" {
		name = "pkg"
	}
	return name
}
