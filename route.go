package piccolo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
)

// This file decides where work runs. Every entry point (Exec, QueryFunc
// and the calls built on them, CopyFrom, Batch, Atomic) calls route once;
// the work it passes then runs through onConn: on the connection of the
// context's transaction (txconn.go), else on a lease (conn.go).

// route runs work on the engine that ctx and ro send it to: the node
// OnNode names, a healthy replica for a read that ReadRouting may route
// (see Read, and the routing rules at the top of replicas.go), else e. Nothing is routed on an ended context.
//
// The fallback rule, written here only: a routed read whose replica fails
// at the connection level (nodeDown: the replica is down) before work
// handed anything to the caller (handed false: no row reached a scan
// callback) marks the replica down and runs again on another healthy
// replica, else on e, the primary (during a failover the primary may be
// the one that is down, and the standbys still serve). A read may so run
// more than once, which is what Read declares harmless. Any other failure
// is returned naming the node, which stays in use.
func (e *PostgresEngine) route(ctx context.Context, ro runOptions, work func(on *PostgresEngine) (handed bool, err error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	target, node, err := e.target(ctx, ro)
	if err != nil {
		return err
	}
	handed, err := work(target)
	// Each replica that is down is marked so and the read moves on: to
	// another healthy replica, else to the primary. A check running
	// meanwhile may bring a node back; the attempts stay bounded.
	tries := 0
	if e.router != nil {
		tries = len(e.router.nodes)
	}
	for ; err != nil && node != "" && !ro.onNode && !handed && ctx.Err() == nil && nodeDown(err); tries-- {
		e.router.markDown(node)
		if target, node = e, ""; tries > 0 {
			target, node, _ = e.target(ctx, ro) // not OnNode: no error
		}
		handed, err = work(target)
	}
	return onNode(node, err)
}

// target picks the engine work runs on: the node OnNode names, a healthy
// replica for a routed read, else e. node is "" for e.
func (e *PostgresEngine) target(ctx context.Context, ro runOptions) (target *PostgresEngine, node string, err error) {
	if ro.onNode {
		n, err := e.Node(ro.node)
		return n, ro.node, err
	}
	if ro.read && e.router != nil && e.txFrom(ctx) == nil {
		if n, ok := e.router.pick(ctx); ok {
			return n.engine, n.name, nil
		}
	}
	return e, "", nil
}

// onConn runs fn on the connection ctx gives e's work: that of the
// context's transaction of e (after its pending BEGIN and SAVEPOINTs,
// taking turns with the goroutines sharing it), else a lease of e's own.
// r, when not nil, is the statement fn runs, which may ride with the
// pending BEGIN and SAVEPOINTs (see PostgresTransaction.onConn).
func (e *PostgresEngine) onConn(ctx context.Context, use connUse, r *rider, fn connFunc) error {
	if tx := e.txFrom(ctx); tx != nil {
		return tx.onConn(ctx, use, r, fn)
	}
	return e.withLease(ctx, fn)
}

// nodeDown reports whether err says a node could not serve at all, as
// opposed to an error about the statement. It positively identifies
// connection-level failures: connecting failed (even with a server error
// such as 53300 too many connections or 57P03 starting up), the connection
// broke (a network error, the end of the stream, a closed connection), or
// the server ended the session under the statement (57P01, 57P02, 57P03: a
// node shutting down or restarting, as a switchover does to its
// standbys). Errors pgx raises before sending (an argument it cannot
// encode, a wrong argument count), errors of the caller's scan function and
// errors PostgreSQL sent about the statement are not. (Its own function so
// that the error targets escape only on the error path.)
func nodeDown(err error) bool {
	var connErr *pgconn.ConnectError
	var lost lostConn
	if errors.As(err, &connErr) || errors.As(err, &lost) || errors.Is(err, errSessionsEnded) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return sessionEnded(err)
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}

// onNode says which node an error came from: in the *StatementError it
// carries, else in a prefix of its own.
func onNode(node string, err error) error {
	if node == "" || err == nil {
		return err
	}
	if se, ok := err.(*StatementError); ok && se.Node == "" {
		se.Node = node
		return err
	}
	return wrapErr(fmt.Sprintf("node %q", node), err)
}
