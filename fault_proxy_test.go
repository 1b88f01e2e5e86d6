package piccolo_test

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// faultProxy is a TCP proxy on loopback between the engine and PostgreSQL
// that a test can break on purpose: cut every connection, or refuse new
// ones, as a server that went down would. (Faults on one connection are
// injected with a net.Conn wrapper through PostgresConfig.Configure.)
type faultProxy struct {
	ln      net.Listener
	network string // of the server: "tcp" or "unix"
	target  string

	mu      sync.Mutex
	conns   map[net.Conn]bool
	stopped bool
	refuse  bool
	wg      sync.WaitGroup
}

// startFaultProxy proxies to the server of dsn; it stops when t ends.
func startFaultProxy(t testing.TB, dsn string) *faultProxy {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{network: "tcp", target: net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), conns: map[net.Conn]bool{}}
	if strings.HasPrefix(cfg.Host, "/") {
		p.network, p.target = "unix", fmt.Sprintf("%s/.s.PGSQL.%d", cfg.Host, cfg.Port)
	}
	if p.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	p.wg.Go(p.accept)
	t.Cleanup(p.stop)
	return p
}

// proxiedDSN returns the package database's DSN pointing at the proxy.
func (p *faultProxy) proxiedDSN(t testing.TB, dsn string) string {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u := url.URL{Scheme: "postgres", User: url.UserPassword(cfg.User, cfg.Password), Host: p.ln.Addr().String(), Path: "/" + cfg.Database}
	q := url.Values{"sslmode": {"disable"}}
	for k, v := range cfg.RuntimeParams { // application_name and the like
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func (p *faultProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.refuse
		p.mu.Unlock()
		if refuse {
			client.Close()
			continue
		}
		server, err := net.Dial(p.network, p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		stopped := p.stopped
		if !stopped {
			p.conns[client], p.conns[server] = true, true
		}
		p.mu.Unlock()
		if stopped {
			client.Close()
			server.Close()
			return
		}
		p.wg.Go(func() { p.pipe(client, server) })
		p.wg.Go(func() { p.pipe(server, client) })
	}
}

// pipe copies from one side to the other until either fails.
func (p *faultProxy) pipe(from, to net.Conn) {
	_, _ = io.Copy(to, from)
	p.closePair(from, to)
}

func (p *faultProxy) closePair(a, b net.Conn) {
	p.mu.Lock()
	delete(p.conns, a)
	delete(p.conns, b)
	p.mu.Unlock()
	a.Close()
	b.Close()
}

// cutAll closes every proxied connection, as a network failure would.
func (p *faultProxy) cutAll() {
	p.mu.Lock()
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// setRefuse makes the proxy close new connections at once (a server that
// is down) or accept them again.
func (p *faultProxy) setRefuse(refuse bool) {
	p.mu.Lock()
	p.refuse = refuse
	p.mu.Unlock()
	if refuse {
		p.cutAll()
	}
}

func (p *faultProxy) stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.ln.Close()
	p.cutAll()
	p.wg.Wait()
}
