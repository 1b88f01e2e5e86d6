package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNoPatroni means the patroni or etcd program is not installed where
// StartPatroni looks. The error wrapping it says what to install.
var ErrNoPatroni = errors.New("patroni or etcd not found")

// PatroniOptions configure a Patroni cluster. The zero value is ready to
// use: three nodes.
type PatroniOptions struct {
	// BinDir holds the PostgreSQL programs. Empty: FindBinDir.
	BinDir string
	// Nodes is the number of PostgreSQL nodes, at least 2 (a leader and a
	// synchronous standby). 0: 3.
	Nodes int
	// StartTimeout bounds how long StartPatroni waits for a leader and a
	// synchronous standby, and StartNode for the node to run. 0: 90 s.
	StartTimeout time.Duration
}

// Patroni is a running high-availability cluster for tests: a
// single-member etcd and PostgreSQL nodes managed by Patroni, with
// synchronous replication (synchronous_mode: true) and Patroni's etcd3
// settings (ttl 20 s, loop_wait 2 s, retry_timeout 5 s), all on 127.0.0.1.
// Every connection from 127.0.0.1 is trusted as superuser postgres, and
// fsync is off (the tests crash processes, not the machine), as in a
// Cluster; unlike one, synchronous_commit stays on, so a commit the leader
// acknowledged has reached the synchronous standby and survives a kill -9
// of the leader.
//
// Its methods are safe for concurrent use. A watchdog ends every process
// and removes the files if the Go process exits without calling Stop.
type Patroni struct {
	bin     string // PostgreSQL programs
	patroni string // the patroni program
	base    string // temporary directory: etcd, nodes, logs
	owner   *owner // OS user running everything; nil: this process's
	etcd    etcdServer
	nodes   []*patroniNode
	timeout time.Duration
	api     *http.Client

	mu       sync.Mutex // guards the nodes' processes and stopped
	stopped  bool
	watchdog *watchdog
}

// patroniNode is one PostgreSQL node and its Patroni.
type patroniNode struct {
	name    string
	dir     string // the node's directory: configuration, log, data
	data    string // PostgreSQL data directory
	conf    string // Patroni's configuration file
	log     string // Patroni's and PostgreSQL's output
	pgPort  int
	apiPort int
	proc    *child // the running patroni; nil when killed
}

// patroniGuardScript keeps a set of process IDs, read one a line ("-PID"
// removes one), and when its standard input ends kills them (Patroni and
// etcd, so that nothing restarts PostgreSQL) and then stops every data
// directory's server, "$@" after the pg_ctl program $1.
const patroniGuardScript = `trap '' HUP INT
pids=
while read -r line; do
	case $line in
	-*) keep=; for p in $pids; do [ "$p" = "${line#-}" ] || keep="$keep $p"; done; pids=$keep ;;
	*) pids="$pids $line" ;;
	esac
done
[ -n "$pids" ] && kill -KILL $pids 2>/dev/null
pgctl=$1
shift
for d in "$@"; do "$pgctl" stop -D "$d" -m immediate -s >/dev/null 2>&1 3>&-; done`

// StartPatroni starts etcd and opts.Nodes Patroni nodes (node0, node1…),
// each on free ports of 127.0.0.1, and waits through Patroni's REST API
// until there is a leader, a synchronous standby, and every node runs. If
// that fails, the error names what did not come up and quotes the end of
// the logs, and nothing is left behind. The caller must call Stop.
func StartPatroni(ctx context.Context, opts PatroniOptions) (*Patroni, error) {
	// The ports are chosen free, but another process may take one before
	// its program binds it: then start again on others.
	const attempts = 3
	for attempt := 1; ; attempt++ {
		p, err := startPatroni(ctx, opts)
		if err == nil || attempt == attempts || ctx.Err() != nil ||
			!strings.Contains(strings.ToLower(err.Error()), "address already in use") {
			return p, err
		}
	}
}

func startPatroni(ctx context.Context, opts PatroniOptions) (*Patroni, error) {
	p, err := newPatroni(opts)
	if err != nil {
		return nil, err
	}
	err = p.start(ctx)
	if err != nil {
		return nil, undoStart(ctx, fmt.Errorf("pgcluster: start patroni: %w", err), p.Stop)
	}
	return p, nil
}

// newPatroni finds the programs, chooses the ports and creates the
// directories.
func newPatroni(opts PatroniOptions) (*Patroni, error) {
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Nodes < 2 {
		return nil, fmt.Errorf("pgcluster: a Patroni cluster needs 2 nodes or more, not %d", opts.Nodes)
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 90 * time.Second
	}
	bin, err := givenOr(opts.BinDir, FindBinDir)
	if err != nil {
		return nil, err
	}
	patroni, err := exec.LookPath("patroni")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %w: %w (Debian: apt-get install patroni)", ErrNoPatroni, err)
	}
	etcdBin, err := exec.LookPath("etcd")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %w: %w (Debian: apt-get install etcd-server)", ErrNoPatroni, err)
	}
	o, err := serverOwner()
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2 + 2*opts.Nodes)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	base, err := tempDir("", "patroni-", o)
	if err != nil {
		return nil, err
	}
	p := &Patroni{
		bin: bin, patroni: patroni, base: base, owner: o, timeout: opts.StartTimeout,
		etcd: etcdServer{bin: etcdBin, dir: filepath.Join(base, "etcd"), clientPort: ports[0], peerPort: ports[1]},
		// No keep-alive: no idle connection (and goroutine) outlives a request.
		api: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
	}
	for i := range opts.Nodes {
		name := "node" + strconv.Itoa(i)
		dir := filepath.Join(base, name)
		p.nodes = append(p.nodes, &patroniNode{
			name: name, dir: dir, data: filepath.Join(dir, "data"), conf: filepath.Join(dir, "patroni.yml"),
			log: filepath.Join(dir, "patroni.log"), pgPort: ports[2+2*i], apiPort: ports[3+2*i],
		})
	}
	return p, nil
}

// freePorts returns n distinct free ports of 127.0.0.1, held open together
// while they are chosen. Another process may take one before its program
// binds it; the start then fails, saying so in the program's log.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// start starts the watchdog, etcd and the nodes, and waits for the cluster.
func (p *Patroni) start(ctx context.Context) error {
	dataDirs := []string{filepath.Join(p.bin, "pg_ctl")}
	for _, n := range p.nodes {
		if err := os.Mkdir(n.dir, 0o700); err != nil {
			return err
		}
		if err := p.owner.chown(n.dir); err != nil {
			return err
		}
		conf, err := p.nodeConfig(n)
		if err != nil {
			return err
		}
		if err := writeOwned(n.conf, conf, p.owner); err != nil {
			return err
		}
		dataDirs = append(dataDirs, n.data)
	}
	w, err := startWatchdog(p.owner, p.base, "patroni-watchdog", patroniGuardScript, dataDirs, []string{p.base})
	if err != nil {
		return err
	}
	p.watchdog = w
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if err := p.etcd.start(ctx, p.owner, p.base, w); err != nil {
		return err
	}
	for _, n := range p.nodes {
		if err := p.spawnNode(n); err != nil {
			return err
		}
	}
	_, err = p.WaitHealthy(ctx)
	return err
}

// spawnNode starts n's Patroni.
func (p *Patroni) spawnNode(n *patroniNode) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return fmt.Errorf("pgcluster: %w", ErrStopped)
	}
	proc, err := spawn(p.owner, n.dir, n.log, childEnvWithout("PATRONI_", "ETCD", "NOTIFY_SOCKET="),
		p.watchdog, p.patroni, n.conf)
	if err != nil {
		return fmt.Errorf("%s: %w", n.name, err)
	}
	n.proc = proc
	return nil
}

// node returns the node named name.
func (p *Patroni) node(name string) (*patroniNode, error) {
	for _, n := range p.nodes {
		if n.name == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("pgcluster: no Patroni node %q", name)
}

// Stop kills every Patroni, stops every PostgreSQL server (immediate
// shutdown: the cluster is throw-away), ends etcd and removes the files.
// A second call does nothing.
func (p *Patroni) Stop(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return nil
	}
	p.stopped = true
	var errs []error
	for _, n := range p.nodes {
		if n.proc != nil {
			n.proc.kill()
			n.proc = nil
		}
	}
	var wg sync.WaitGroup
	nodeErrs := make([]error, len(p.nodes))
	for i, n := range p.nodes {
		wg.Go(func() {
			if err := pgCtlStop(ctx, p.owner, p.base, p.bin, n.data, "immediate"); err != nil {
				nodeErrs[i] = fmt.Errorf("pgcluster: stop %s's server: %w", n.name, err)
			}
		})
	}
	wg.Wait()
	errs = append(errs, nodeErrs...)
	p.etcd.kill()
	p.watchdog.disarm()
	if err := os.RemoveAll(p.base); err != nil {
		errs = append(errs, fmt.Errorf("pgcluster: remove patroni files: %w", err))
	}
	return errors.Join(errs...)
}

// Names returns the nodes' names: node0, node1…
func (p *Patroni) Names() []string {
	names := make([]string, len(p.nodes))
	for i, n := range p.nodes {
		names[i] = n.name
	}
	return names
}

// DSN returns a multi-host URL of database dbname ("": postgres) listing
// every node, with target_session_attrs=read-write: a connection reaches
// whichever node is the primary when it connects.
func (p *Patroni) DSN(dbname string) string { return p.multiHostDSN(dbname, "read-write") }

// ReadDSN is DSN with target_session_attrs=prefer-standby: a connection
// reaches a standby if one answers, else the primary.
func (p *Patroni) ReadDSN(dbname string) string { return p.multiHostDSN(dbname, "prefer-standby") }

// NodeDSN returns the URL of database dbname ("": postgres) on the node
// named name, whatever its role, or "" if there is no such node.
func (p *Patroni) NodeDSN(name, dbname string) string {
	n, err := p.node(name)
	if err != nil {
		return ""
	}
	return dsn(n.pgPort, dbname)
}

func (p *Patroni) multiHostDSN(dbname, attrs string) string {
	if dbname == "" {
		dbname = "postgres"
	}
	hosts := make([]string, len(p.nodes))
	for i, n := range p.nodes {
		hosts[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(n.pgPort))
	}
	q := url.Values{"sslmode": {"disable"}, "target_session_attrs": {attrs}}
	return "postgres://postgres@" + strings.Join(hosts, ",") + "/" + url.PathEscape(dbname) + "?" + q.Encode()
}

// logTails returns the end of every node's log and of etcd's, for errors.
func (p *Patroni) logTails() string {
	var sb strings.Builder
	for _, n := range p.nodes {
		fmt.Fprintf(&sb, "\n--- %s (postgres port %d, REST API port %d) log:\n%s\n", n.name, n.pgPort, n.apiPort, logSince(n.log, 0))
	}
	fmt.Fprintf(&sb, "--- etcd log:\n%s", logSince(p.etcd.log(), 0))
	return sb.String()
}
