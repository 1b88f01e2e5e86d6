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
		if !socketPending(conn) {
			return true
		}
		if err := readPending(conn); err != nil {
			// The FATAL error closed it; or the read timed out with
			// something in the socket (a loaded machine, a split
			// message): unknown is not alive, and the pool makes another.
			ctx, cancel := boundedContext(context.Background())
			_ = conn.Close(ctx)
			cancel()
			return false
		}
	}
	return !conn.IsClosed()
}

// pendingReadTimeout bounds the read of what an idle connection was sent.
// The server wrote it whole before it closed, so the read does not wait
// unless the network split a message.
const pendingReadTimeout = time.Millisecond

// readPending reads one message from a connection whose socket has
// something to read. A FATAL error or the end of the stream closes the
// connection and comes back as an error, as does a timeout; a notification
// is kept for the caller (pgx's OnNotification runs).
func readPending(conn *pgconn.PgConn) error {
	ctx, cancel := context.WithTimeout(context.Background(), pendingReadTimeout)
	defer cancel()
	_, err := conn.ReceiveMessage(ctx)
	return err
}

// socketPending reports whether conn's socket has something to read: data,
// the end of the stream or an error. It never blocks.
//
// What it needs of the socket (its raw descriptor, and the function that
// peeks) is found once per connection and kept in the connection's custom
// data, so that the check allocates nothing per statement.
func socketPending(conn *pgconn.PgConn) bool {
	data := conn.CustomData()
	p, ok := data[peekerKey].(*peeker)
	if !ok {
		var err error
		if p, err = newPeeker(conn.Conn()); err != nil {
			return true // closed: reading says so
		}
		if data != nil {
			data[peekerKey] = p
		}
	}
	return p.pending()
}

// peekerKey is the peeker's key in a connection's custom data.
const peekerKey = "piccolo.peeker"

// peeker looks into one connection's socket without reading from it. Only
// the goroutine that holds the connection uses it.
type peeker struct {
	raw  syscall.RawConn // nil: the socket cannot be inspected
	seen bool            // what the last peek found
	peek func(fd uintptr)
}

// newPeeker returns the peeker of conn's socket. A *tls.Conn is seen
// through: its socket holds the encrypted bytes. A net.Conn that is not a
// socket and does not say what it wraps gets a peeker that finds nothing.
func newPeeker(conn net.Conn) (*peeker, error) {
	for {
		wrapper, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		conn = wrapper.NetConn()
	}
	p := &peeker{}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return p, nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	p.raw = raw
	p.peek = func(fd uintptr) { p.seen = peek(fd) }
	return p, nil
}

// pending reports whether the socket has something to read.
func (p *peeker) pending() bool {
	if p.raw == nil {
		return false
	}
	// Control, not Read: pgconn's background reader may sit in a Read of
	// this socket, holding its read lock; a peek takes nothing from it.
	p.seen = false
	if err := p.raw.Control(p.peek); err != nil {
		return true // closed: reading says so
	}
	return p.seen
}
