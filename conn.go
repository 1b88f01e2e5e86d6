package piccolo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// This file owns the engine's connections: borrowing one (lease, acquire),
// giving it back (release), the one rule for a session the server ended,
// the bounded contexts that clean up, and running one statement on a
// connection and reading its rows. Where a statement runs is route.go's
// business; the transaction's own connection is txconn.go's.

// connFunc is work done on one connection.
type connFunc func(ctx context.Context, conn *pgx.Conn) error

// lease is a connection borrowed from the pool, or opened for one use.
type lease struct {
	conn   *pgx.Conn
	pooled *pgxpool.Conn // nil for a one-shot connection
}

// release gives a pooled connection back, or closes a one-shot one even
// when ctx has ended (bounded by closeTimeout).
func (l lease) release(ctx context.Context) {
	if l.pooled != nil {
		l.pooled.Release()
		return
	}
	ctx, cancel := boundedContext(ctx)
	defer cancel()
	_ = l.conn.Close(ctx)
}

// acquire borrows a connection from the pool, or opens a one-shot
// connection when no pool is running.
//
// A pooled connection whose session the server ended while it sat idle
// (pg_terminate_backend, a server restart, idle_session_timeout) is
// discarded before anything is sent on it, and another one is taken: that
// work provably never reached the server. With replaceEnded, this is the
// engine's only transparent retry of a failed session; a statement that
// meets the end of its session after it was sent is never sent again.
func (e *PostgresEngine) acquire(ctx context.Context) (lease, error) {
	if e.closed.Load() {
		return lease{}, ErrEngineClosed
	}
	if pool := e.pool.Load(); pool != nil {
		if e.acquireTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, e.acquireTimeout)
			defer cancel()
		}
		// Every connection the pool held may be dead (a restart ends them
		// all): one more attempt than it holds reaches a fresh one.
		for range e.poolConfig.MaxConns + 1 {
			pc, err := pool.Acquire(ctx)
			if err != nil {
				return lease{}, fmt.Errorf("piccolo: acquire connection: %w", err)
			}
			if sessionAlive(pc.Conn().PgConn()) {
				return lease{conn: pc.Conn(), pooled: pc}, nil
			}
			pc.Release() // closed: the pool destroys it
		}
		return lease{}, fmt.Errorf("piccolo: acquire connection: %w", errSessionsEnded)
	}
	if e.oneShotWarned.CompareAndSwap(false, true) {
		e.logger.LogAttrs(ctx, slog.LevelWarn, "piccolo: no connection pool is running, so every query opens and closes a connection of its own "+
			"(a few milliseconds each); call StartConnectionPool (logged once per engine)")
	}
	conn, err := pgx.ConnectConfig(ctx, e.poolConfig.ConnConfig.Copy())
	if err != nil {
		return lease{}, fmt.Errorf("piccolo: connect: %w", err)
	}
	return lease{conn: conn}, nil
}

// withLease runs fn on a connection of its own, pooled or one-shot, and
// gives it back. Work that fails once sent is not sent again, whatever the
// failure: the server may have run it, or part of it (acquire has already
// set aside pooled connections whose session had ended before).
func (e *PostgresEngine) withLease(ctx context.Context, fn connFunc) error {
	l, err := e.acquire(ctx)
	if err != nil {
		return err
	}
	defer l.release(ctx)
	err = e.connFailed(ctx, l.conn, fn(ctx, l.conn))
	if readOnlySQL(err) && e.evictIfReadOnly(ctx, l.conn) {
		err = readOnlyNode{err}
	}
	return err
}

// errSessionsEnded is why acquire gave up: the server had ended the
// session of every pooled connection it tried.
var errSessionsEnded = errors.New("the server ended the session of every connection tried; is it restarting?")

// replaceEnded handles err, the failure of work sent on *l that has no
// effect outside its session (a BEGIN and SAVEPOINTs, nothing else): when
// err says the server ended the pooled session, it resets the pool (a
// server restart ends every idle session too), borrows a fresh connection
// in place of *l and reports true, so the caller sends the same work
// again. Otherwise it returns err, joined with the reason no fresh
// connection could be had.
//
// The dead connection goes back to the pool (which destroys it) before the
// fresh one is borrowed: holding it while waiting would deadlock once
// every pooled connection is held by a transaction in the same plight, as
// when a failover ends every session under load. Until a fresh one is had,
// *l keeps the dead connection as a lease of no pool, closed already.
func (e *PostgresEngine) replaceEnded(ctx context.Context, l *lease, err error) (bool, error) {
	if !sessionEnded(err) || l.pooled == nil || ctx.Err() != nil {
		return false, err
	}
	e.resetPool()
	dead := l.conn
	l.release(ctx)
	*l = lease{conn: dead}
	fresh, acqErr := e.acquire(ctx)
	if acqErr != nil {
		return false, errors.Join(err, acqErr)
	}
	*l = fresh
	return true, nil
}

// sessionEnded reports whether err is the server ending the session: the
// backend was terminated (57P01), the server shut down (57P02) or is
// starting (57P03). It does not say when: before the statement was sent,
// or while it ran (then the statement may have taken effect: a nextval, a
// commit whose answer was lost). Only work that has no effect outside the
// session (BEGIN) may be sent again after it.
func sessionEnded(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case pgerrcode.AdminShutdown, pgerrcode.CrashShutdown, pgerrcode.CannotConnectNow:
		return true
	}
	return false
}

// connFailed is the engine's one rule for a connection whose work failed
// with err (withLease and a transaction's onConn pass every outcome
// through it). It returns err, marked lostConn when the connection closed
// under the work without an error from PostgreSQL (see markLost). A
// connection that lost its session, however, is closed: the pool destroys
// it when it is given back and never hands it out again. The pool's idle
// connections are then dealt with by what the failure says of them:
//   - the server ended the session (57P01, 57P02, 57P03: terminated, shut
//     down, restarting, as when a failover manager stops a primary to
//     demote it): it ended or will end theirs the same way, and acquire
//     checks each before use (sessionAlive finds the FATAL error waiting in
//     its socket), so they are left to that check;
//   - the connection broke under the work (the network or the host
//     failed: nothing came from the server, yet something was sent) while
//     ctx was alive: the idle ones most likely broke too, with nothing in
//     their sockets to tell, so the pool is reset: they are dropped before
//     reuse. A connection that closed because ctx ended, or work that was
//     never sent because the connection had closed already, says nothing
//     of the others.
//
// New connections go through the DSN again: with several hosts and
// target_session_attrs=read-write they find the new primary. The third
// way a node fails its pooled connections, turning read-only (25006, a
// demoted primary still serving), needs a question to the node before
// eviction: see evictIfReadOnly.
func (e *PostgresEngine) connFailed(ctx context.Context, conn *pgx.Conn, err error) error {
	if err == nil {
		return nil
	}
	err = markLost(conn, err)
	if _, lost := err.(lostConn); lost && ctx.Err() == nil && !pgconn.SafeToRetry(err) {
		e.resetPool()
	}
	return err
}

// resetPool closes the pool's idle connections, which a session that ended
// under one of them says are likely dead too (a server restart ends them
// all); connections in use close when they come back. acquire would find
// each dead one before use; resetting spares it the attempts.
func (e *PostgresEngine) resetPool() {
	if p := e.pool.Load(); p != nil {
		p.Reset()
	}
}

// closeTimeout bounds the statements that clean up after a failure or a
// cancelled context (ROLLBACK, CLOSE, Terminate): they run even when the
// caller's context has ended, but never hang.
const closeTimeout = 5 * time.Second

// boundedContext returns ctx without its cancellation, bounded by
// closeTimeout: for cleanup that must run whatever ctx says, and never
// hang.
func boundedContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
}

// cleanupContext returns a context for statements that must run even when
// ctx has ended (ROLLBACK, CLOSE), bounded so they never hang.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx.Err() == nil {
		return ctx, func() {}
	}
	return boundedContext(ctx)
}

// runStatement runs q on conn and hands its rows to scan (nil: Exec).
// It also returns how many rows scan saw.
func runStatement(ctx context.Context, conn *pgx.Conn, q Querystring, scan func(pgx.Rows) error) (pgconn.CommandTag, int, error) {
	if scan == nil {
		tag, err := conn.Exec(ctx, q.SQL, q.Args...)
		return tag, 0, err
	}
	rows, err := conn.Query(ctx, q.SQL, q.Args...)
	if err != nil {
		return pgconn.CommandTag{}, 0, err
	}
	return readRows(rows, scan)
}

// readRows hands each row of rows to scan and closes rows. It returns the
// command tag and how many rows scan saw.
func readRows(rows pgx.Rows, scan func(pgx.Rows) error) (pgconn.CommandTag, int, error) {
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
		if err := scan(rows); err != nil {
			return pgconn.CommandTag{}, n, err
		}
	}
	rows.Close()
	return rows.CommandTag(), n, rows.Err()
}

// connRows are pgx's rows over a result read straight from conn (a
// pipeline's, or ExecParams'), saying which connection they came from, as
// the rows of conn.Query do (pgx's say nil), to the caller and to a
// pgx.RowScanner (pgx's Scan would hand it its own rows).
type connRows struct {
	pgx.Rows
	conn *pgx.Conn
	err  error // a RowScanner's failure, which ends the rows as in pgx
}

// Conn returns the connection the rows are read from.
func (r *connRows) Conn() *pgx.Conn { return r.conn }

// Scan reads the current row into dest, as pgx's rows do, a RowScanner
// reading these rows.
func (r *connRows) Scan(dest ...any) error {
	rs, ok := oneRowScanner(dest)
	if !ok {
		return r.Rows.Scan(dest...)
	}
	err := rs.ScanRow(r)
	if err != nil && r.err == nil {
		r.err = err
		r.Rows.Close()
	}
	return err
}

// Err returns a RowScanner's failure, else the rows' own.
func (r *connRows) Err() error {
	if r.err != nil {
		return r.err
	}
	return r.Rows.Err()
}

// resultRows returns the rows of rr, a result read from conn.
func resultRows(conn *pgx.Conn, rr *pgconn.ResultReader) pgx.Rows {
	return &connRows{Rows: pgx.RowsFromResultReader(conn.TypeMap(), rr), conn: conn}
}

// oneRowScanner returns dest's only destination when it scans rows
// itself.
func oneRowScanner(dest []any) (pgx.RowScanner, bool) {
	if len(dest) != 1 {
		return nil, false
	}
	rs, ok := dest[0].(pgx.RowScanner)
	return rs, ok
}

// lostConn marks an error after which the connection was closed although
// PostgreSQL sent no error: the network or the server failed under the
// statement (pgx then often says no more than "conn closed"). It reads as
// the error it wraps.
type lostConn struct{ error }

func (l lostConn) Unwrap() error { return l.error }

// markLost wraps err in lostConn when conn closed under it without an error
// from PostgreSQL. A nil conn (a transaction that ended and gave its
// connection back) lost nothing.
func markLost(conn *pgx.Conn, err error) error {
	if err == nil || conn == nil || !conn.IsClosed() || fromServer(err) {
		return err
	}
	return lostConn{err}
}

// fromServer reports whether PostgreSQL sent err. (Its own function so that
// the error target escapes to the heap only on the error path, not on every
// statement.)
func fromServer(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr)
}

// readOnlyNode marks a 25006 (read_only_sql_transaction) that came from
// the node rather than from the transaction: the node had turned read-only
// (a primary demoted to a standby, or made read-only by its configuration)
// and the connection was evicted (see evictIfReadOnly). It reads as the
// error it wraps.
type readOnlyNode struct{ error }

func (r readOnlyNode) Unwrap() error { return r.error }

// readOnlySQL reports whether PostgreSQL refused a write with 25006
// read_only_sql_transaction.
func readOnlySQL(err error) bool {
	if err == nil {
		return false // before the error target, which escapes: no allocation per statement
	}
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == pgerrcode.ReadOnlySQLTransaction
}

// readOnlyProbe asks a node whether it is read-only for every session, as
// opposed to the session or transaction that met a 25006: in recovery (a
// standby, such as a demoted primary), or default_transaction_read_only
// on in its configuration (reset_val: a session's own SET does not count).
const readOnlyProbe = "SELECT pg_is_in_recovery() OR reset_val = 'on' FROM pg_settings WHERE name = 'default_transaction_read_only'"

// evictIfReadOnly settles a 25006 met on conn, now idle, in work that the
// engine did not make read-only (a transaction started with ReadOnly is
// never probed: its 25006 is its own). The rule: the connection is evicted
// only on evidence that its node refuses writes from everyone, which
// readOnlyProbe asks on the connection itself (one round trip, on this
// path only). A 25006 of a transaction made read-only by the caller's own
// SQL (SET TRANSACTION READ ONLY, a session SET) finds the node writable:
// the connection stays and nothing is retried. When the node is read-only
// the connection is closed, so the pool destroys it when it is given
// back, and the pool is reset, so that no idle connection to the node is
// handed out again; it reports true. A connection that is not idle, or
// whose probe fails, is left to the rules of connFailed.
func (e *PostgresEngine) evictIfReadOnly(ctx context.Context, conn *pgx.Conn) bool {
	if conn == nil || conn.IsClosed() || conn.PgConn().TxStatus() != 'I' {
		return false
	}
	ctx, cancel := boundedContext(ctx)
	defer cancel()
	var readOnly bool
	if err := conn.QueryRow(ctx, readOnlyProbe).Scan(&readOnly); err != nil || !readOnly {
		return false
	}
	e.logger.LogAttrs(ctx, slog.LevelWarn, "piccolo: evicting the pool's connections to a node that turned read-only (25006: demoted primary?)",
		slog.String("host", conn.PgConn().Conn().RemoteAddr().String()))
	_ = conn.Close(ctx)
	e.resetPool()
	return true
}
