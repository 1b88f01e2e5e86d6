package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/piccolo-go/piccolo"
)

const (
	// connForever is the lifetime and idle time of the shell's connection:
	// the pool must never replace it, or the session state the user set
	// (SET, temporary tables, prepared statements) would be lost.
	connForever = 100 * 365 * 24 * time.Hour
	// shellAcquireTimeout bounds the wait for the shell's one connection.
	// The shell runs one thing at a time, so the connection is free
	// whenever it asks; the bound turns a bug into an error, not a hang.
	shellAcquireTimeout = time.Minute
	// cancelTimeout bounds sending a CancelRequest.
	cancelTimeout = 10 * time.Second
	// closeGrace is how long a statement whose context ends (SIGTERM, or
	// Ctrl-C in a script) has to stop after its CancelRequest before pgx
	// closes the connection under it.
	closeGrace = 2 * time.Second
)

// sessionConn follows the shell's single connection: the server process
// to send a CancelRequest to, and the command tag of the last statement
// (QueryFunc returns rows but no tag).
type sessionConn struct {
	pg       atomic.Pointer[pgconn.PgConn]
	who      atomic.Pointer[string] // user@host:port/database
	connects atomic.Int64           // how many times the pool connected

	mu  sync.Mutex
	tag pgconn.CommandTag
}

// newShellEngine returns an engine for a shell session on dsn: a pool of
// one connection that never expires, so that every statement and
// transaction of the session runs in the same server session, as in psql.
// Statements are described before each run (no cached prepared
// statements): a shell changes schemas and may DISCARD ALL.
func newShellEngine(dsn string) (*piccolo.PostgresEngine, *sessionConn, error) {
	c := &sessionConn{}
	engine, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{
		DSN:             dsn,
		MaxConns:        1,
		MaxConnLifetime: connForever,
		MaxConnIdleTime: connForever,
		AcquireTimeout:  shellAcquireTimeout,
		QueryExecMode:   pgx.QueryExecModeDescribeExec,
		Tracer:          c,
		Configure: func(pc *pgxpool.Config) {
			pc.MaxConns, pc.MinConns = 1, 0
			pc.MaxConnLifetimeJitter = 0
			pc.AfterConnect = c.afterConnect
			// A context that ends during a statement (SIGTERM) first asks the
			// server to cancel it, as psql does, so that it stops there too.
			pc.ConnConfig.BuildContextWatcherHandler = func(pg *pgconn.PgConn) ctxwatch.Handler {
				return &pgconn.CancelRequestContextWatcherHandler{Conn: pg, DeadlineDelay: closeGrace}
			}
		},
	})
	if err != nil {
		return nil, nil, err
	}
	return engine, c, nil
}

// afterConnect notes the pool's new connection.
func (c *sessionConn) afterConnect(_ context.Context, conn *pgx.Conn) error {
	cfg := conn.Config()
	who := fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
	c.who.Store(&who)
	c.pg.Store(conn.PgConn())
	c.connects.Add(1)
	return nil
}

// TraceQueryStart implements pgx.QueryTracer.
func (c *sessionConn) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

// TraceQueryEnd implements pgx.QueryTracer: it keeps the statement's tag.
func (c *sessionConn) TraceQueryEnd(_ context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	c.mu.Lock()
	c.tag = data.CommandTag
	c.mu.Unlock()
}

// lastTag returns the command tag of the last statement sent.
func (c *sessionConn) lastTag() pgconn.CommandTag {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tag
}

// cancel asks the server to cancel the statement running on the session's
// connection, which then fails with 57014 and stays open: its transaction
// (now failed) stays too, as in psql.
func (c *sessionConn) cancel(ctx context.Context) error {
	pg := c.pg.Load()
	if pg == nil {
		return nil
	}
	ctx, stop := context.WithTimeout(context.WithoutCancel(ctx), cancelTimeout)
	defer stop()
	if err := pg.CancelRequest(ctx); err != nil {
		return fmt.Errorf("send the cancel request: %w", err)
	}
	return nil
}

// describe names the connection as psql's banner does: user@host:port/database.
func (c *sessionConn) describe() string {
	if who := c.who.Load(); who != nil {
		return *who
	}
	return "(not connected)"
}

// serverVersion is the server's version as it reports it.
func (c *sessionConn) serverVersion() string {
	if pg := c.pg.Load(); pg != nil {
		return pg.ParameterStatus("server_version")
	}
	return ""
}
