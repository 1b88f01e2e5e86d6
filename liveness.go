package piccolo

import (
	"context"
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// maxPendingMessages bounds how many messages sessionAlive reads from an
// idle connection (notifications of a LISTEN, parameter changes) before it
// calls the connection alive.
const maxPendingMessages = 8

// sessionAlive reports whether the server has not ended the session of an
// idle connection, found without writing to it. A session the server ended
// while the connection sat idle (pg_terminate_backend, a restart,
// idle_session_timeout) has already sent its FATAL error and closed its
// end, so the socket has something to read; a live idle session has sent
// nothing. Only when something is there does sessionAlive read it, and the
// FATAL error or the end of the stream closes the connection.
//
// Where the socket cannot be inspected (a custom DialFunc returned a
// net.Conn that is not a socket and does not say what it wraps, or a
// platform other than Linux, macOS and the BSDs) it reports true: the
// statement sent on a dead session then fails with the server's error, and
// is not sent again.
func sessionAlive(conn *pgconn.PgConn) bool {
	for range maxPendingMessages {
		if conn.IsClosed() {
			return false
		}
		if !socketPending(conn.Conn()) {
			return true
		}
		readPending(conn)
	}
	return !conn.IsClosed()
}

// pendingReadTimeout bounds the read of what an idle connection was sent.
// The server wrote it whole before it closed, so the read does not wait
// unless the network split a message.
const pendingReadTimeout = time.Millisecond

// readPending reads one message from a connection whose socket has
// something to read. A FATAL error or the end of the stream closes the
// connection; a notification is kept for the caller (pgx's OnNotification
// runs). A timeout leaves the connection as it was.
func readPending(conn *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), pendingReadTimeout)
	defer cancel()
	_, _ = conn.ReceiveMessage(ctx)
}

// socketPending reports whether conn's socket has something to read: data,
// the end of the stream or an error. It never blocks. A *tls.Conn is seen
// through: its socket holds the encrypted bytes.
func socketPending(conn net.Conn) bool {
	for {
		wrapper, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		conn = wrapper.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true // closed: reading says so
	}
	// Control, not Read: pgconn's background reader may sit in a Read of
	// this socket, holding its read lock; a peek takes nothing from it.
	pending := false
	if err := raw.Control(func(fd uintptr) { pending = peek(fd) }); err != nil {
		return true
	}
	return pending
}
