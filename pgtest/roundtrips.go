package pgtest

import (
	"net"
	"sync"
)

// RoundTrips counts a client's round trips as turns: the client writing
// after the server has answered. Bytes the client writes before any
// answer (a pipeline sent in several writes) are one turn. Wrap the
// connections to count with Conn, for example in pgx's DialFunc.
type RoundTrips struct {
	mu       sync.Mutex
	turns    int
	answered bool // the server sent something since the client last wrote
}

// note records a read from the server (read) or a write to it.
func (r *RoundTrips) note(read bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case read:
		r.answered = true
	case r.answered:
		r.turns, r.answered = r.turns+1, false
	}
}

// Reset starts a count: the next write is a turn.
func (r *RoundTrips) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.turns, r.answered = 0, true
}

// Count returns the turns since Reset.
func (r *RoundTrips) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.turns
}

// Conn returns conn reporting its reads and writes to r.
func (r *RoundTrips) Conn(conn net.Conn) net.Conn { return countedConn{Conn: conn, r: r} }

// countedConn reports its reads and writes to a RoundTrips.
type countedConn struct {
	net.Conn
	r *RoundTrips
}

func (c countedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.r.note(true)
	}
	return n, err
}

func (c countedConn) Write(b []byte) (int, error) {
	c.r.note(false)
	return c.Conn.Write(b)
}

// NetConn returns the wrapped connection (a liveness check may want the
// socket).
func (c countedConn) NetConn() net.Conn { return c.Conn }
