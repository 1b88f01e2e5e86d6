package piccolo

import (
	"fmt"
	"net"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"
)

// This file gives Discover (see ReadRouting) an engine for each of the
// cluster's hosts. Which of them are standbys is the health checks' to
// find out (router.go).

// discoverNodes returns a routed node for each host Discover looks at, none
// without Discover.
func (e *PostgresEngine) discoverNodes(cfg ReadRouting) ([]*routedNode, error) {
	if !cfg.Discover {
		if len(cfg.Hosts) > 0 {
			return nil, fmt.Errorf("piccolo: ReadRouting: Hosts without Discover")
		}
		return nil, nil
	}
	hosts := dsnHosts(&e.poolConfig.ConnConfig.Config)
	if len(cfg.Hosts) > 0 {
		var err error
		if hosts, err = listedHosts(cfg.Hosts, hosts[0]); err != nil {
			return nil, err
		}
	}
	nodes := make([]*routedNode, 0, len(hosts))
	for _, h := range hosts {
		nodes = append(nodes, &routedNode{name: h[0].name(), engine: e.hostEngine(h), discovered: true})
	}
	return nodes, nil
}

// endpoint is one way to reach a host: pgconn tries a host's endpoints in
// order (with sslmode=prefer, with TLS and then without).
type endpoint pgconn.FallbackConfig

func (p endpoint) name() string {
	return net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port)))
}

// dsnHosts returns the endpoints of each host cc names, grouped by host in
// the DSN's order.
func dsnHosts(cc *pgconn.Config) [][]endpoint {
	all := []endpoint{{Host: cc.Host, Port: cc.Port, TLSConfig: cc.TLSConfig}}
	for _, f := range cc.Fallbacks {
		all = append(all, endpoint(*f))
	}
	var hosts [][]endpoint
	index := map[string]int{}
	for _, p := range all {
		i, ok := index[p.name()]
		if !ok {
			i = len(hosts)
			index[p.name()] = i
			hosts = append(hosts, nil)
		}
		hosts[i] = append(hosts[i], p)
	}
	return hosts
}

// listedHosts returns the endpoints of each of list ("host" or
// "host:port"), made like those of template, the DSN's first host.
func listedHosts(list []string, template []endpoint) ([][]endpoint, error) {
	hosts := make([][]endpoint, 0, len(list))
	for _, h := range list {
		host, port := h, template[0].Port
		if hp, ps, err := net.SplitHostPort(h); err == nil {
			p, err := strconv.ParseUint(ps, 10, 16)
			if err != nil || p == 0 {
				return nil, fmt.Errorf("piccolo: ReadRouting: host %q: bad port", h)
			}
			host, port = hp, uint16(p)
		}
		if host == "" {
			return nil, fmt.Errorf("piccolo: ReadRouting: empty host in Hosts")
		}
		eps := make([]endpoint, 0, len(template))
		for _, t := range template {
			p := endpoint{Host: host, Port: port}
			if t.TLSConfig != nil {
				p.TLSConfig = t.TLSConfig.Clone()
				if p.TLSConfig.ServerName == t.Host {
					p.TLSConfig.ServerName = host
				}
			}
			eps = append(eps, p)
		}
		hosts = append(hosts, eps)
	}
	return hosts, nil
}

// hostEngine returns an engine like e that connects to one host by its
// endpoints, with MinConns zero and no target_session_attrs check.
func (e *PostgresEngine) hostEngine(eps []endpoint) *PostgresEngine {
	pc := e.poolConfig.Copy()
	pc.MinConns = 0
	cc := &pc.ConnConfig.Config
	cc.Host, cc.Port, cc.TLSConfig = eps[0].Host, eps[0].Port, eps[0].TLSConfig
	cc.Fallbacks = nil
	for _, p := range eps[1:] {
		f := pgconn.FallbackConfig(p)
		cc.Fallbacks = append(cc.Fallbacks, &f)
	}
	cc.ValidateConnect = nil
	return &PostgresEngine{
		poolConfig:     pc,
		acquireTimeout: e.acquireTimeout,
		tracer:         e.tracer,
		fetchMode:      e.fetchMode,
		logger:         e.logger,
		logQueries:     e.logQueries,
		logResponses:   e.logResponses,
		nodes:          map[string]*PostgresEngine{},
	}
}

// discovered returns the engines of the discovered hosts.
func (r *router) discovered() []*PostgresEngine {
	var engines []*PostgresEngine
	for _, n := range r.nodes {
		if n.discovered {
			engines = append(engines, n.engine)
		}
	}
	return engines
}
