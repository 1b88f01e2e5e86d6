package piccolo

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/piccolo-go/piccolo/pgtest"
)

// connect opens a connection of the test's own, closed when it ends.
func connect(t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// An idle session is alive until the server ends it; a message it was sent
// meanwhile (a notification) does not make it dead, and is kept for the
// caller.
func TestSessionAliveUntilServerEndsIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, other := connect(t), connect(t)
	if !sessionAlive(conn.PgConn()) {
		t.Fatal("a live idle session reported dead")
	}
	if _, err := conn.Exec(ctx, "LISTEN piccolo_liveness"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec(ctx, "NOTIFY piccolo_liveness, 'hello'"); err != nil {
		t.Fatal(err)
	}
	if !sessionAlive(conn.PgConn()) {
		t.Fatal("a session with a notification waiting reported dead")
	}
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if n, err := conn.WaitForNotification(wait); err != nil || n.Payload != "hello" {
		t.Fatalf("the notification read by the check: %v, %v", n, err)
	}
	var terminated bool
	if err := other.QueryRow(ctx, "SELECT pg_terminate_backend($1, 5000)", conn.PgConn().PID()).Scan(&terminated); err != nil || !terminated {
		t.Fatalf("terminate: %v %v", terminated, err)
	}
	if sessionAlive(conn.PgConn()) {
		t.Fatal("a session the server ended reported alive")
	}
	if !conn.IsClosed() {
		t.Fatal("the ended session's connection is still open")
	}
}

// BenchmarkSessionCheck measures what acquire adds to every pooled
// statement (peek), against a ping, and the cost of a whole pooled
// statement for scale.
func BenchmarkSessionCheck(b *testing.B) {
	ctx := context.Background()
	conn := connect(b)
	b.Run("peek", func(b *testing.B) {
		for b.Loop() {
			if !sessionAlive(conn.PgConn()) {
				b.Fatal("dead")
			}
		}
	})
	b.Run("ping", func(b *testing.B) {
		for b.Loop() {
			if err := conn.Ping(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pooled SELECT 1", func(b *testing.B) {
		e, err := NewPostgresEngine(PostgresConfig{DSN: pgtest.DSN(b), MaxConns: 1})
		if err != nil {
			b.Fatal(err)
		}
		if err := e.StartConnectionPool(ctx); err != nil {
			b.Fatal(err)
		}
		defer e.Close()
		for b.Loop() {
			if _, err := e.Exec(ctx, Querystring{SQL: "SELECT 1"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
