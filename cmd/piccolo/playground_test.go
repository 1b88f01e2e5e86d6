package main

import (
	"context"
	"errors"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/pgtest"
)

// TestPlaygroundOnDSN runs the whole tour on a database of its own, with a
// leftover of an earlier run in the way, and checks that it leaves nothing.
func TestPlaygroundOnDSN(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t)
	engine, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := engine.RunDDL(ctx, "CREATE SCHEMA piccolo_playground; CREATE TABLE piccolo_playground.band (id int)"); err != nil {
		t.Fatal(err)
	}
	if err := engine.RunDDL(ctx, "CREATE TABLE public.band (id int)"); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runCLI(t, "", "playground", "--dsn", dsn, "--rows", "20000", "--no-color")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s\nstdout:\n%s", code, stderr, stdout)
	}
	for _, want := range []string{
		"on --dsn",
		"── 1/11  Create the schema atomically",
		"✓ 5 tables with 5 foreign keys, created in one transaction",
		"sql> CREATE TABLE concert",
		" Pythonistas | Guido   |       1000",
		"✓ committed: the Gophers and their manager Rob are in, popularity 600",
		"(SQLSTATE 23505)",
		"✓ rolled back: SQLSTATE 23505 came back",
		`sql> SAVEPOINT "savepoint_1"`,
		"✓ the outer transaction committed The Garage and Rooftop Bar",
		`sql> ROLLBACK TO SAVEPOINT "before_discount"`,
		"✓ the discount was rolled back to its savepoint",
		"could not serialize access due to concurrent update (SQLSTATE 40001)",
		"popularity 2000 → 2002, no update lost",
		`FETCH FORWARD 5000 FROM "piccolo_batch_1"  (×5)`,
		"Streamed 20,000 rows in",
		"✓ all 20,000 rows arrived once",
		`level=INFO msg="piccolo: query" query_id=1 sql="BEGIN READ ONLY"`,
		"(×50)",
		"✓ 50 goroutines, one row: 1 created it, 49 found it, all with the same id",
		"✓ schema piccolo_playground dropped",
		"All 11 steps behaved as expected.",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	if n := strings.Count(stdout, "✓ "); n != 11 {
		t.Errorf("%d steps passed, want 11", n)
	}
	if strings.Contains(stdout, "\x1b[") {
		t.Error("--no-color output has escape sequences")
	}
	if stderr != "" {
		t.Errorf("stderr = %q, want it empty", stderr)
	}
	rows, err := engine.RunQuerystring(ctx, piccolo.Querystring{SQL: `SELECT
		(SELECT count(*) FROM pg_namespace WHERE nspname = 'piccolo_playground') AS schemas,
		to_regclass('public.band') IS NOT NULL AS untouched`})
	if err != nil {
		t.Fatal(err)
	}
	if rows[0]["schemas"] != int64(0) || rows[0]["untouched"] != true {
		t.Errorf("after the tour: %v, want the schema gone and public.band untouched", rows[0])
	}
}

// TestPlaygroundEmbedded runs the tour the README's way, with no server
// configured, and checks that the throw-away cluster is gone afterwards.
func TestPlaygroundEmbedded(t *testing.T) {
	clearServerEnv(t)
	code, stdout, stderr := runCLI(t, "", "playground", "--rows", "1000")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s\nstdout:\n%s", code, stderr, stdout)
	}
	if !strings.Contains(stdout, "All 11 steps behaved as expected.") {
		t.Errorf("stdout lacks the final verdict:\n%s", stdout)
	}
	addr := checkClusterGone(t, stderr)
	if !strings.Contains(stdout, "on a throw-away cluster on "+addr) {
		t.Errorf("stdout does not name the throw-away cluster on %s", addr)
	}
}

// TestPlaygroundEmbeddedInterrupted cancels the tour in its third step, as
// Ctrl-C does, and checks that the throw-away cluster is gone all the same.
func TestPlaygroundEmbeddedInterrupted(t *testing.T) {
	clearServerEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stdout := &cancelOn{text: "── 3/11", cancel: cancel}
	var stderr strings.Builder
	code := run(ctx, []string{"playground", "--rows", "1000"}, strings.NewReader(""), stdout, &stderr)
	if code != exitInterrupted {
		t.Fatalf("exit code %d, want %d; stderr:\n%s\nstdout:\n%s", code, exitInterrupted, stderr.String(), stdout.String())
	}
	if strings.Contains(stdout.String(), "── 4/11") {
		t.Error("the tour went on after it was interrupted")
	}
	checkClusterGone(t, stderr.String())
}

// cancelOn is a writer that calls cancel once text has been written to it.
type cancelOn struct {
	strings.Builder
	text   string
	cancel context.CancelFunc
}

func (c *cancelOn) Write(p []byte) (int, error) {
	n, err := c.Builder.Write(p)
	if strings.Contains(c.String(), c.text) {
		c.cancel()
	}
	return n, err
}

// clearServerEnv unsets DATABASE_URL and the PG* variables (pgtest.Main set
// them) for the test, so that the playground starts its own cluster.
func clearServerEnv(t *testing.T) {
	t.Helper()
	for _, k := range append(pgServerVars(), "DATABASE_URL") {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
}

// checkClusterGone finds where the throw-away cluster ran in the command's
// stderr, checks that its data directory is gone and that nothing answers
// on its port, and returns its address.
func checkClusterGone(t *testing.T, stderr string) string {
	t.Helper()
	m := regexp.MustCompile(`Started it on (127\.0\.0\.1:\d+) with its data in (\S+);`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("stderr does not say where the cluster ran:\n%s", stderr)
	}
	addr, dataDir := m[1], m[2]
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data directory %s still there after the run (stat: %v)", dataDir, err)
	}
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Errorf("the server still answers on %s after the run", addr)
	}
	return addr
}

func TestPlaygroundUnreachableServer(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out, errOut strings.Builder
	code := run(ctx, []string{"playground", "--dsn", "postgres://postgres@" + addr + "/x?connect_timeout=5"}, strings.NewReader(""), &out, &errOut)
	if code != exitFailure {
		t.Errorf("exit code %d, want %d", code, exitFailure)
	}
	if !strings.Contains(errOut.String(), "piccolo playground: connect to --dsn:") {
		t.Errorf("stderr does not explain the failure:\n%s", errOut.String())
	}
}

func TestPlaygroundInterrupted(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // as if Ctrl-C came first
	var out, errOut strings.Builder
	code := run(ctx, []string{"playground", "--dsn", dsn}, strings.NewReader(""), &out, &errOut)
	if code != exitInterrupted {
		t.Errorf("exit code %d, want %d; stderr:\n%s", code, exitInterrupted, errOut.String())
	}
	if !strings.Contains(errOut.String(), "interrupted") {
		t.Errorf("stderr does not say it was interrupted:\n%s", errOut.String())
	}
}
