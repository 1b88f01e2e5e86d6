package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// startCluster starts a cluster that is stopped when the test ends.
func startCluster(t *testing.T, opts Options) *Cluster {
	t.Helper()
	c, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	stopAtEnd(t, "cluster", c)
	return c
}

// stopAtEnd stops s, a cluster or a bouncer, when the test ends.
func stopAtEnd(t *testing.T, what string, s interface{ Stop(context.Context) error }) {
	t.Cleanup(func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Errorf("%s Stop: %v", what, err)
		}
	})
}

// queryString runs sql on a new connection to dsn and returns its single
// value as text.
func queryString(ctx context.Context, dsn, sql string) (string, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var s string
	err = conn.QueryRow(ctx, sql).Scan(&s)
	return s, err
}

func mustQuery(t *testing.T, dsn, sql string) string {
	t.Helper()
	s, err := queryString(t.Context(), dsn, sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// mustExec runs sql on a new connection to dsn.
func mustExec(t *testing.T, dsn, sql string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// assertGone checks that nothing answers on port and dir does not exist.
func assertGone(t *testing.T, port int, dir string) {
	t.Helper()
	if conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second); err == nil {
		conn.Close()
		t.Errorf("port %d still answers", port)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists (stat: %v)", dir, err)
	}
}

func TestStartServesAndApplySettings(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Options{Settings: map[string]string{
		"cluster_name": `it's a \ test`, // quoting of quotes and backslashes
		"work_mem":     "8MB",
	}})
	dsn := c.DSN("postgres")
	if want := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.Port()); dsn != want {
		t.Errorf("DSN = %q, want %q", dsn, want)
	}
	if c.DSN("") != dsn {
		t.Errorf(`DSN("") = %q, want the postgres database %q`, c.DSN(""), dsn)
	}
	tests := []struct{ sql, want string }{
		{"SELECT 1::text", "1"},
		{"SELECT current_user", "postgres"},
		{"SELECT current_setting('server_encoding')", "UTF8"},
		{"SHOW fsync", "off"},
		{"SHOW synchronous_commit", "off"},
		{"SHOW full_page_writes", "off"},
		{"SHOW max_connections", "200"},
		{"SHOW wal_level", "replica"},
		{"SHOW listen_addresses", "127.0.0.1"},
		{"SHOW work_mem", "8MB"},
		{"SHOW cluster_name", `it's a \ test`},
		{"SELECT setting FROM pg_settings WHERE name = 'data_directory'", c.DataDir()},
	}
	for _, tt := range tests {
		if got := mustQuery(t, dsn, tt.sql); got != tt.want {
			t.Errorf("%s = %q, want %q", tt.sql, got, tt.want)
		}
	}
}

func TestStartRejectsBadSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		settings map[string]string
		want     string
	}{
		{"reserved port", map[string]string{"port": "5432"}, "chosen by pgcluster"},
		{"reserved case-insensitively", map[string]string{"Listen_Addresses": "*"}, "chosen by pgcluster"},
		{"name injecting a line", map[string]string{"fsync = on\nwork_mem": "1MB"}, "invalid setting name"},
		{"value injecting a line", map[string]string{"work_mem": "1MB\nfsync = on"}, "line break"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Start(t.Context(), Options{Settings: tt.settings})
			if err == nil {
				c.Stop(context.Background())
				t.Fatal("Start succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestRestartKeepsDataAndPort(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		opts   Options
		break_ func(t *testing.T, c *Cluster) // what happens to the server before Restart
	}{
		{"running server", Options{}, func(*testing.T, *Cluster) {}},
		// With the default synchronous_commit=off a crash may lose the last commits.
		{"crashed server", Options{Settings: map[string]string{"synchronous_commit": "on"}}, killPostmaster},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := startCluster(t, tt.opts)
			dsn := c.DSN("postgres")
			mustExec(t, dsn, "CREATE TABLE kept AS SELECT 'survives'::text AS v")
			port := c.Port()
			tt.break_(t, c)
			if err := c.Restart(t.Context()); err != nil {
				t.Fatalf("Restart: %v", err)
			}
			if c.Port() != port {
				t.Errorf("port changed from %d to %d", port, c.Port())
			}
			if got := mustQuery(t, dsn, "SELECT v FROM kept"); got != "survives" {
				t.Errorf("row after restart = %q, want %q", got, "survives")
			}
		})
	}
}

// killPostmaster kills c's server with SIGKILL, as a crash would, and waits
// until the port stops answering.
func killPostmaster(t *testing.T, c *Cluster) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.DataDir(), "postmaster.pid"))
	if err != nil {
		t.Fatalf("read postmaster.pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	if err != nil {
		t.Fatalf("parse postmaster.pid: %v", err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill postmaster %d: %v", pid, err)
	}
	waitFor(t, "the killed server to stop answering", func() bool {
		_, err := queryString(t.Context(), c.DSN("postgres"), "SELECT 1::text")
		return err != nil
	})
}

// waitFor polls cond for up to 30 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestStopRemovesEverything(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		break_ func(t *testing.T, c *Cluster)
	}{
		{"running server", func(*testing.T, *Cluster) {}},
		{"crashed server", killPostmaster},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Start(t.Context(), Options{})
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			mustQuery(t, c.DSN("postgres"), "SELECT 1::text")
			tt.break_(t, c)
			if err := c.Stop(t.Context()); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			assertGone(t, c.Port(), c.DataDir())
			assertGone(t, c.Port(), c.base)
			if err := c.Stop(t.Context()); err != nil {
				t.Errorf("second Stop: %v, want nil", err)
			}
			if err := c.Restart(t.Context()); !errors.Is(err, ErrStopped) {
				t.Errorf("Restart after Stop: %v, want ErrStopped", err)
			}
			if _, err := StartStandby(t.Context(), c, Options{}); !errors.Is(err, ErrStopped) {
				t.Errorf("StartStandby of a stopped primary: %v, want ErrStopped", err)
			}
		})
	}
}

func TestStartWithDataDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "nested", "data")
	c := startCluster(t, Options{DataDir: dir})
	if c.DataDir() != dir {
		t.Errorf("DataDir() = %q, want %q", c.DataDir(), dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		t.Errorf("no cluster in the given data directory: %v", err)
	}
	mustQuery(t, c.DSN("postgres"), "SELECT 1::text")
	if err := c.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	assertGone(t, c.Port(), dir)

	notEmpty := t.TempDir()
	if err := os.WriteFile(filepath.Join(notEmpty, "precious"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := Start(t.Context(), Options{DataDir: notEmpty}); err == nil {
		c.Stop(context.Background())
		t.Fatal("Start in a non-empty directory succeeded")
	}
	if _, err := os.Stat(filepath.Join(notEmpty, "precious")); err != nil {
		t.Errorf("Start touched a non-empty directory it refused: %v", err)
	}
}

func TestStartRetriesWhenPortIsTaken(t *testing.T) {
	t.Parallel()
	takenPort, pick, picks := takenFirst(t)
	c := startCluster(t, Options{pickPort: pick})
	if *picks != 2 {
		t.Errorf("picked %d ports, want 2", *picks)
	}
	if c.Port() == takenPort {
		t.Errorf("cluster claims the taken port %d", takenPort)
	}
	mustQuery(t, c.DSN("postgres"), "SELECT 1::text")
}

// takenFirst returns a port that a listener holds until the test ends, and
// a pickPort function that returns that port first and free ones after,
// counting its calls in *picks.
func takenFirst(t *testing.T) (takenPort int, pick func() (int, error), picks *int) {
	t.Helper()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })
	takenPort = taken.Addr().(*net.TCPAddr).Port
	picks = new(int)
	return takenPort, func() (int, error) {
		*picks++
		if *picks == 1 {
			return takenPort, nil
		}
		return freePort()
	}, picks
}

func TestStartFailureExplainsAndCleansUp(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	// shared_buffers below the minimum makes the server refuse to start.
	_, err := Start(t.Context(), Options{DataDir: dir, Settings: map[string]string{"shared_buffers": "1kB"}})
	if err == nil {
		t.Fatal("Start succeeded with an invalid setting")
	}
	if !strings.Contains(err.Error(), "server log:") || !strings.Contains(err.Error(), "shared_buffers") {
		t.Errorf("error does not show the server log's complaint: %v", err)
	}
	assertGone(t, 0, dir)
}

func TestStartCancelled(t *testing.T) {
	t.Parallel()
	for _, after := range []time.Duration{0, 300 * time.Millisecond, 1200 * time.Millisecond} {
		t.Run(after.String(), func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "data")
			ctx, cancel := context.WithTimeout(t.Context(), after)
			defer cancel()
			began := time.Now()
			c, err := Start(ctx, Options{DataDir: dir})
			if err == nil {
				// The machine was fast enough to finish first: then it is a
				// cluster like any other, and Stop removes it.
				if err := c.Stop(context.Background()); err != nil {
					t.Fatalf("Stop of a cluster that started within %v: %v", after, err)
				}
				assertGone(t, c.Port(), dir)
				return
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Start error = %v, want it to wrap context.DeadlineExceeded", err)
			}
			if took := time.Since(began); took > after+15*time.Second {
				t.Errorf("Start took %v after its deadline", took-after)
			}
			assertGone(t, 0, dir)
		})
	}
}

func TestStandbyReplicates(t *testing.T) {
	t.Parallel()
	primary := startCluster(t, Options{Settings: map[string]string{"max_connections": "150"}})
	standby, err := StartStandby(t.Context(), primary, Options{})
	if err != nil {
		t.Fatalf("StartStandby: %v", err)
	}
	stopAtEnd(t, "standby", standby)
	if standby.Port() == primary.Port() || standby.DataDir() == primary.DataDir() {
		t.Fatalf("standby shares port or data with primary: %d %s", standby.Port(), standby.DataDir())
	}
	pdsn, sdsn := primary.DSN("postgres"), standby.DSN("postgres")
	tests := []struct{ dsn, sql, want string }{
		{pdsn, "SELECT pg_is_in_recovery()::text", "false"},
		{sdsn, "SELECT pg_is_in_recovery()::text", "true"},
		{sdsn, "SHOW max_connections", "150"}, // inherited from the primary
		{sdsn, "SELECT setting FROM pg_settings WHERE name = 'port'", strconv.Itoa(standby.Port())},
		{pdsn, "SELECT count(*)::text FROM pg_stat_replication WHERE state = 'streaming'", "1"},
	}
	for _, tt := range tests {
		if got := mustQuery(t, tt.dsn, tt.sql); got != tt.want {
			t.Errorf("%s on port %s = %q, want %q", tt.sql, tt.dsn, got, tt.want)
		}
	}
	mustExec(t, pdsn, "CREATE TABLE replicated AS SELECT 'from primary'::text AS v")
	waitFor(t, "the row to reach the standby", func() bool {
		v, err := queryString(t.Context(), sdsn, "SELECT v FROM replicated")
		return err == nil && v == "from primary"
	})
	if _, err := queryString(t.Context(), sdsn, "INSERT INTO replicated VALUES ('x') RETURNING v"); err == nil ||
		!strings.Contains(err.Error(), "read-only") {
		t.Errorf("write on standby: %v, want a read-only transaction error", err)
	}
}
