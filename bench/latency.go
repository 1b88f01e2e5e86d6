package main

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"
)

// latencyProxy forwards loopback TCP connections to a server and delays
// every chunk of bytes by delay in each direction, as a network whose round
// trip is 2 x delay would (a cross-zone link, say). Bytes keep their order,
// and a chunk's delay does not hold up the chunks read after it, so that a
// pipeline stays one round trip.
type latencyProxy struct {
	ln     net.Listener
	target string
	delay  time.Duration

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// startLatencyProxy listens on a free loopback port and forwards what
// connects to target.
func startLatencyProxy(target string, delay time.Duration) (*latencyProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("latency proxy: %w", err)
	}
	p := &latencyProxy{ln: ln, target: target, delay: delay, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// dial connects to the proxy whatever address it is asked for: the
// DialFunc of the connections that go through it.
func (p *latencyProxy) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", p.ln.Addr().String())
}

// close stops listening, closes every forwarded connection and waits for
// the proxy's goroutines.
func (p *latencyProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *latencyProxy) serve() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.forward(client)
	}
}

// track records c, for close to close.
func (p *latencyProxy) track(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns[c] = struct{}{}
}

// untrack closes cs and forgets them.
func (p *latencyProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		_ = c.Close()
	}
}

// forward connects client to the target and copies both ways, delayed,
// until either side closes.
func (p *latencyProxy) forward(client net.Conn) {
	defer p.wg.Done()
	p.track(client)
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		p.untrack(client)
		return
	}
	p.track(server)
	var both sync.WaitGroup
	both.Add(2)
	go func() { defer both.Done(); p.pipe(server, client) }()
	go func() { defer both.Done(); p.pipe(client, server) }()
	both.Wait()
	p.untrack(client, server)
}

// chunk is bytes read, and when they may be written on.
type chunk struct {
	b  []byte
	at time.Time
}

// pipe copies src to dst, each chunk written delay after it was read. When
// either side fails it closes both, which ends the other direction too.
func (p *latencyProxy) pipe(dst, src net.Conn) {
	chunks := make(chan chunk, 256)
	go func() {
		defer close(chunks)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				chunks <- chunk{b: buf[:n], at: time.Now().Add(p.delay)}
			}
			if err != nil {
				return
			}
		}
	}()
	failed := false
	for c := range chunks {
		if failed {
			continue // drain, so that the reader ends
		}
		// Simulated latency: the wait is the point, not a synchronisation.
		if wait := time.Until(c.at); wait > 0 {
			time.Sleep(wait)
		}
		if _, err := dst.Write(c.b); err != nil {
			failed = true
			_ = src.Close()
		}
	}
	_ = dst.Close()
	_ = src.Close()
}

// checkProxy fails unless a round trip through p takes at least 2 x delay:
// the proxy delays what it should.
func checkProxy(ctx context.Context, p *latencyProxy, roundTrip func(ctx context.Context) error) error {
	start := time.Now()
	if err := roundTrip(ctx); err != nil {
		return fmt.Errorf("through the latency proxy: %w", err)
	}
	if took := time.Since(start); took < 2*p.delay {
		return fmt.Errorf("a round trip through the latency proxy took %s, less than 2 x %s", took, p.delay)
	}
	return nil
}
