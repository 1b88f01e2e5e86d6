// Package turncount counts a PostgreSQL connection's round trips as client
// turns: the client writing after the server has answered. Bytes the client
// writes before any answer (a pipeline sent in several writes) are one
// turn. The engine's round-trip test and the bench program's round-trip
// workloads count with it, through the connection's DialFunc.
package turncount

import (
	"context"
	"net"
	"sync"
)

// Counter counts the turns of the connections it wraps. It is safe for
// concurrent use; it counts meaningfully one connection at a time.
type Counter struct {
	mu       sync.Mutex
	turns    int
	answered bool // the server sent something since the client last wrote
}

func (c *Counter) wrote() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.answered {
		c.turns++
		c.answered = false
	}
}

func (c *Counter) read() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.answered = true
}

// Reset starts a count: the next write is a turn.
func (c *Counter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.turns, c.answered = 0, true
}

// Count returns the turns since the last Reset.
func (c *Counter) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.turns
}

// Wrap returns conn reporting its reads and writes to c.
func (c *Counter) Wrap(conn net.Conn) net.Conn { return countedConn{Conn: conn, counter: c} }

// WrapDial returns dial with every connection it opens wrapped by c (the
// shape of pgconn.Config's DialFunc).
func (c *Counter) WrapDial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return c.Wrap(conn), nil
	}
}

// countedConn reports its reads and writes to a Counter.
type countedConn struct {
	net.Conn
	counter *Counter
}

func (c countedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.counter.read()
	}
	return n, err
}

func (c countedConn) Write(b []byte) (int, error) {
	c.counter.wrote()
	return c.Conn.Write(b)
}

// NetConn returns the wrapped connection, so that what looks into the
// socket (the engine's check for a dead idle session) sees it.
func (c countedConn) NetConn() net.Conn { return c.Conn }
