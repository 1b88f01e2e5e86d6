package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// startBouncer starts a PgBouncer in front of c that is stopped when the
// test ends.
func startBouncer(t *testing.T, c *Cluster, opts BouncerOptions) *Bouncer {
	t.Helper()
	b, err := StartBouncer(t.Context(), c, opts)
	if err != nil {
		t.Fatalf("StartBouncer: %v", err)
	}
	stopAtEnd(t, "bouncer", b)
	return b
}

// connectMode opens a connection to dsn in the given pgx query exec mode,
// closed when the test ends.
func connectMode(t *testing.T, dsn string, mode pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = mode
	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatalf("connect to %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// adminShow runs a SHOW command on b's admin console and returns its rows
// as column name → text value.
func adminShow(t *testing.T, b *Bouncer, cmd string) []map[string]string {
	t.Helper()
	// The admin console speaks only the simple query protocol.
	conn := connectMode(t, b.DSN("pgbouncer"), pgx.QueryExecModeSimpleProtocol)
	rows, err := conn.Query(t.Context(), cmd)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	defer rows.Close()
	var out []map[string]string
	for rows.Next() {
		row := map[string]string{}
		for i, fd := range rows.FieldDescriptions() {
			row[fd.Name] = string(rows.RawValues()[i])
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return out
}

// showConfig returns b's SHOW CONFIG as setting → value.
func showConfig(t *testing.T, b *Bouncer) map[string]string {
	t.Helper()
	cfg := map[string]string{}
	for _, row := range adminShow(t, b, "SHOW CONFIG") {
		cfg[row["key"]] = row["value"]
	}
	return cfg
}

// poolMode returns the pool mode SHOW POOLS reports for database postgres.
func poolMode(t *testing.T, b *Bouncer) string {
	t.Helper()
	for _, row := range adminShow(t, b, "SHOW POOLS") {
		if row["database"] == "postgres" && row["user"] == "postgres" {
			return row["pool_mode"]
		}
	}
	t.Fatal("SHOW POOLS has no pool for database postgres, user postgres")
	return ""
}

// backendPID returns the PID of the server backend running a query of conn.
func backendPID(t *testing.T, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) int {
	t.Helper()
	var pid int
	if err := q.QueryRow(t.Context(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatalf("SELECT pg_backend_pid(): %v", err)
	}
	return pid
}

func TestBouncerTransactionPooling(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Options{})
	b := startBouncer(t, c, BouncerOptions{DefaultPoolSize: 2})
	if want := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", b.Port()); b.DSN("") != want {
		t.Errorf("DSN(\"\") = %q, want %q", b.DSN(""), want)
	}
	if b.Port() == c.Port() {
		t.Fatalf("bouncer and cluster share port %d", b.Port())
	}
	if got := poolMode(t, b); got != "transaction" {
		t.Errorf("SHOW POOLS pool_mode = %q, want transaction", got)
	}

	// A transaction and a query through PgBouncer, with query exec mode
	// exec as PgBouncer 1.18's transaction pooling needs.
	dsn := b.DSN("postgres") + "&default_query_exec_mode=exec"
	mustExec(t, c.DSN("postgres"), "CREATE TABLE t (v int)")
	client1 := connectMode(t, b.DSN("postgres"), pgx.QueryExecModeExec)
	tx, err := client1.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	first := backendPID(t, tx)
	if _, err := tx.Exec(t.Context(), "INSERT INTO t VALUES ($1), ($2)", 1, 2); err != nil {
		t.Fatal(err)
	}
	if again := backendPID(t, tx); again != first {
		t.Errorf("one transaction ran on backends %d and %d", first, again)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := mustQuery(t, dsn, "SELECT sum(v)::text FROM t"); got != "3" {
		t.Errorf("sum through the bouncer = %q, want 3", got)
	}

	// Transaction pooling: client1's server connection went back to the
	// pool at COMMIT although client1 stays connected, so client2 gets it
	// (it is the only idle one), and client1's next transaction needs
	// another. In session pooling client1 would keep it.
	client2 := connectMode(t, dsn, pgx.QueryExecModeExec)
	tx2, err := client2.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx2.Rollback(context.Background())
	if got := backendPID(t, tx2); got != first {
		t.Errorf("client2's transaction ran on backend %d, want client1's released backend %d", got, first)
	}
	if got := backendPID(t, client1); got == first {
		t.Errorf("client1's second transaction ran on backend %d, held by client2's open transaction", got)
	}
}

func TestBouncerOptions(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Options{})
	tests := []struct {
		name string
		opts BouncerOptions
		want map[string]string // SHOW CONFIG values
	}{
		{"defaults", BouncerOptions{}, map[string]string{
			"pool_mode": "transaction", "auth_type": "trust", "listen_addr": "127.0.0.1",
			"ignore_startup_parameters": "extra_float_digits",
		}},
		{"session pooling and sizes", BouncerOptions{PoolMode: PoolSession, DefaultPoolSize: 3, MaxClientConn: 42},
			map[string]string{"pool_mode": "session", "default_pool_size": "3", "max_client_conn": "42"}},
		{"extra settings", BouncerOptions{PoolMode: PoolStatement, Settings: map[string]string{
			"server_login_retry": "1", "application_name_add_host": "1",
		}}, map[string]string{"pool_mode": "statement", "server_login_retry": "1", "application_name_add_host": "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := startBouncer(t, c, tt.opts)
			cfg := showConfig(t, b)
			for k, want := range tt.want {
				if cfg[k] != want {
					t.Errorf("SHOW CONFIG %s = %q, want %q", k, cfg[k], want)
				}
			}
			if got := cfg["listen_port"]; got != strconv.Itoa(b.Port()) {
				t.Errorf("listen_port = %q, want %d", got, b.Port())
			}
			mode := pgx.QueryExecModeExec
			if tt.opts.PoolMode == PoolStatement {
				// Exec mode wraps a query in an implicit transaction of
				// several messages, which statement pooling allows.
				mode = pgx.QueryExecModeSimpleProtocol
			}
			if got := backendPID(t, connectMode(t, b.DSN("postgres"), mode)); got == 0 {
				t.Error("no backend PID through the bouncer")
			}
		})
	}
}

func TestBouncerRejectsBadOptions(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Options{})
	tests := []struct {
		name string
		opts BouncerOptions
		want string
	}{
		{"pool mode", BouncerOptions{PoolMode: "Transaction"}, "invalid pool mode"},
		{"negative size", BouncerOptions{DefaultPoolSize: -1}, "negative"},
		{"reserved port", BouncerOptions{Settings: map[string]string{"listen_port": "6432"}}, "chosen by pgcluster"},
		{"reserved case-insensitively", BouncerOptions{Settings: map[string]string{"LogFile": "/tmp/x"}}, "chosen by pgcluster"},
		{"option field", BouncerOptions{Settings: map[string]string{"pool_mode": "session"}}, "BouncerOptions.PoolMode"},
		{"name injecting a line", BouncerOptions{Settings: map[string]string{"a = 1\nb": "1"}}, "invalid bouncer setting name"},
		{"value injecting a line", BouncerOptions{Settings: map[string]string{"stats_period": "1\nlisten_port = 1"}}, "line break"},
		{"missing binary", BouncerOptions{Binary: filepath.Join(t.TempDir(), "pgbouncer")}, ErrNoBouncer.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := StartBouncer(t.Context(), c, tt.opts)
			if err == nil {
				b.Stop(context.Background())
				t.Fatal("StartBouncer succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
	if _, err := StartBouncer(t.Context(), nil, BouncerOptions{}); err == nil {
		t.Error("StartBouncer without a target cluster succeeded")
	}
}

func TestBouncerStopRemovesEverything(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Options{})
	b, err := StartBouncer(t.Context(), c, BouncerOptions{})
	if err != nil {
		t.Fatalf("StartBouncer: %v", err)
	}
	for _, f := range []string{"pgbouncer.ini", "pgbouncer.log", "users.txt"} {
		if _, err := os.Stat(filepath.Join(b.base, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	// A client with an open transaction must not hold Stop up.
	conn := connectMode(t, b.DSN("postgres"), pgx.QueryExecModeExec)
	if _, err := conn.Exec(t.Context(), "BEGIN"); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := b.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("Stop took %v", took)
	}
	assertGone(t, b.Port(), b.base)
	if err := conn.Ping(t.Context()); err == nil {
		t.Error("client connection still works after Stop")
	}
	if err := b.Stop(t.Context()); err != nil {
		t.Errorf("second Stop: %v, want nil", err)
	}
	// The cluster is unharmed.
	mustQuery(t, c.DSN("postgres"), "SELECT 1::text")

	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := StartBouncer(t.Context(), c, BouncerOptions{}); !errors.Is(err, ErrStopped) {
		t.Errorf("StartBouncer in front of a stopped cluster: %v, want ErrStopped", err)
	}
}

func TestBouncerRetriesWhenPortIsTaken(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Options{})
	takenPort, pick, picks := takenFirst(t)
	b := startBouncer(t, c, BouncerOptions{pickPort: pick})
	if *picks != 2 {
		t.Errorf("picked %d ports, want 2", *picks)
	}
	if b.Port() == takenPort {
		t.Errorf("bouncer claims the taken port %d", takenPort)
	}
	if got := mustQuery(t, b.DSN("postgres")+"&default_query_exec_mode=exec", "SELECT 1::text"); got != "1" {
		t.Errorf("SELECT 1 = %q", got)
	}
	// The first attempt found its port taken and its process is gone (with
	// nowhere to listen it exits); only the second one's came up.
	log := readFrom(b.logFile, 0)
	if !strings.Contains(log, fmt.Sprintf("cannot listen on 127.0.0.1:%d", takenPort)) {
		t.Errorf("log does not show the attempt on the taken port %d:\n%s", takenPort, log)
	}
	if n := strings.Count(log, "process up"); n != 1 {
		t.Errorf("log shows %d pgbouncers up, want 1", n)
	}
}

func TestBouncerStartFailureExplainsAndCleansUp(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Options{})
	parent := t.TempDir()
	_, err := StartBouncer(t.Context(), c, BouncerOptions{
		tempParent: parent,
		Settings:   map[string]string{"listen_backlog": "lots"},
	})
	if err == nil {
		t.Fatal("StartBouncer succeeded with an invalid setting")
	}
	if !strings.Contains(err.Error(), "pgbouncer log:") || !strings.Contains(err.Error(), `invalid value "lots"`) {
		t.Errorf("error does not show the log's complaint: %v", err)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Errorf("left behind %v", entries)
	}
}

func TestBouncerStartCancelled(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Options{})
	parent := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := StartBouncer(ctx, c, BouncerOptions{tempParent: parent}); !errors.Is(err, context.Canceled) {
		t.Errorf("StartBouncer error = %v, want it to wrap context.Canceled", err)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Errorf("left behind %v", entries)
	}
}
