// Package pgcluster starts and stops throw-away PostgreSQL clusters from the
// PostgreSQL programs installed on the machine, for tests that need a server
// of their own: pgtest uses it when DATABASE_URL is unset, fault tests
// restart servers and replicate to standbys with it. StartBouncer puts a
// PgBouncer in front of a cluster, for tests of clients behind a pooler.
// StartPatroni runs a high-availability cluster (etcd, and PostgreSQL
// nodes with synchronous replication managed by Patroni), for tests of
// clients through switchovers and failovers.
//
// A cluster is a set of processes outside the Go runtime, so callers must
// call Stop (in t.Cleanup or TestMain). As a safety net each cluster has a
// watchdog that stops the server and removes its files when the Go process
// exits without calling Stop (a crash, a test timeout, os.Exit). The
// package registers nothing global.
//
// Files go in a new directory in $TMPDIR (absolute or relative; /tmp when
// unset), which may be writable by this process's user only. The servers
// listen on 127.0.0.1 and on no Unix socket, whose path a long $TMPDIR
// would make too long.
//
// Clusters are built for speed, not durability or security: fsync is off,
// and every connection from 127.0.0.1 is trusted as superuser postgres.
// When the process runs as root, the programs run as the OS user postgres,
// because initdb and postgres refuse to run as root.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// ErrStopped is returned by Restart and StartStandby when a cluster has been
// stopped: its files are gone, so it cannot come back.
var ErrStopped = errors.New("pgcluster: cluster is stopped")

// errPortInUse marks a start that failed because another process took the
// port between the choice and the server's bind; Start then tries another.
var errPortInUse = errors.New("port in use")

// Options configure a cluster. The zero value is ready to use.
type Options struct {
	// BinDir holds initdb, pg_ctl and pg_basebackup. Empty: FindBinDir.
	BinDir string
	// DataDir is where the cluster's files go; it must not exist or be
	// empty. Empty: a directory inside a new temporary directory. Stop
	// removes it either way: the cluster is throw-away.
	DataDir string
	// Settings are postgresql.conf parameters (name → value) added to, or
	// overriding, the defaults: fsync, synchronous_commit and
	// full_page_writes off, max_connections 200, wal_level replica,
	// max_wal_senders 10. port, listen_addresses and
	// unix_socket_directories are pgcluster's to choose. A crash (not Restart
	// or Stop) can lose the last commits while synchronous_commit is off:
	// crash tests that check committed data set it to "on".
	Settings map[string]string

	// pickPort chooses a port to try; nil: freePort. Tests use it to make
	// the first choice collide.
	pickPort func() (int, error)
}

// Cluster is a running throw-away PostgreSQL cluster listening on
// 127.0.0.1. Its methods are safe for concurrent use.
type Cluster struct {
	bin      string              // directory of the PostgreSQL programs
	base     string              // temporary directory: server log, data unless Options.DataDir
	data     string              // data directory
	logFile  string              // server log, appended to by every start
	owner    *owner              // OS user running the programs; nil: this process's
	settings map[string]string   // Options.Settings, inherited by standbys
	pickPort func() (int, error) // Options.pickPort; nil: freePort

	mu       sync.Mutex // serialises Restart and Stop
	port     int
	stopped  bool
	watchdog *watchdog
}

// Start creates a cluster with initdb (superuser postgres, UTF8, C locale,
// trust authentication) and starts it on a free port of 127.0.0.1. If ctx
// ends first, Start stops whatever it started, removes the files and
// returns an error wrapping ctx's error. The caller must call Stop.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	return create(ctx, opts, func(ctx context.Context, c *Cluster) error {
		return c.run(ctx, "initdb", "-D", c.data, "-U", "postgres", "-A", "trust",
			"-E", "UTF8", "--locale=C", "--no-sync")
	})
}

// StartStandby creates a hot standby of primary with pg_basebackup -R and
// starts it on a free port of its own. It streams from primary and answers
// read-only queries. The standby inherits primary's Options.Settings, then
// opts.Settings; opts.BinDir defaults to primary's. The caller must call
// Stop on both clusters.
func StartStandby(ctx context.Context, primary *Cluster, opts Options) (*Cluster, error) {
	primary.mu.Lock()
	port, stopped := primary.port, primary.stopped
	primary.mu.Unlock()
	if stopped {
		return nil, fmt.Errorf("pgcluster: start standby: primary: %w", ErrStopped)
	}
	if opts.BinDir == "" {
		opts.BinDir = primary.bin
	}
	merged := maps.Clone(primary.settings)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, opts.Settings)
	opts.Settings = merged
	return create(ctx, opts, func(ctx context.Context, c *Cluster) error {
		return c.run(ctx, "pg_basebackup", "-D", c.data, "-h", "127.0.0.1", "-p", strconv.Itoa(port),
			"-U", "postgres", "-R", "-X", "stream", "-c", "fast", "--no-sync")
	})
}

// create prepares directories and the watchdog, fills the data directory
// with populate, and starts the server. On failure it leaves nothing behind.
func create(ctx context.Context, opts Options, populate func(context.Context, *Cluster) error) (*Cluster, error) {
	if err := validateSettings(opts.Settings); err != nil {
		return nil, err
	}
	c, err := newCluster(opts)
	if err != nil {
		return nil, err
	}
	if c.watchdog, err = startWatchdog(c.owner, c.base, "pgcluster-watchdog", clusterGuardScript,
		[]string{filepath.Join(c.bin, "pg_ctl"), c.data}, []string{c.data, c.base}); err != nil {
		return nil, errors.Join(fmt.Errorf("pgcluster: %w", err), c.removeFiles())
	}
	err = populate(ctx, c)
	if err == nil {
		err = c.startOnFreePort(ctx)
	}
	if err != nil {
		return nil, undoStart(ctx, fmt.Errorf("pgcluster: %w", err), c.Stop)
	}
	return c, nil
}

// newCluster resolves the binaries and the OS user, and creates the
// directories, owned by that user.
func newCluster(opts Options) (*Cluster, error) {
	bin, err := givenOr(opts.BinDir, FindBinDir)
	if err != nil {
		return nil, err
	}
	o, err := serverOwner()
	if err != nil {
		return nil, err
	}
	base, err := tempDir("", "pgcluster-", o)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		bin:      bin,
		base:     base,
		data:     filepath.Join(base, "data"),
		logFile:  filepath.Join(base, "server.log"),
		owner:    o,
		settings: opts.Settings,
		pickPort: opts.pickPort,
	}
	if opts.DataDir != "" {
		if err := c.useDataDir(opts.DataDir); err != nil {
			return nil, errors.Join(err, os.RemoveAll(base))
		}
	}
	return c, nil
}

// useDataDir makes dir, which must not exist or be empty, c's data
// directory, owned by c's owner.
func (c *Cluster) useDataDir(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("pgcluster: data directory: %w", err)
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("pgcluster: create data directory: %w", err)
		}
	case err != nil:
		return fmt.Errorf("pgcluster: data directory: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("pgcluster: data directory %s is not empty", dir)
	}
	c.data = dir
	if err := c.owner.give(dir); err != nil {
		return fmt.Errorf("pgcluster: data directory: %w", err)
	}
	return nil
}

// startOnFreePort writes the settings for a free port and starts the server
// there, trying other ports when another process takes the chosen one first.
func (c *Cluster) startOnFreePort(ctx context.Context) error {
	return onFreePort(ctx, c.pickPort, func(port int) error {
		if err := writeSettings(c.data, serverSettings(port, c.settings)); err != nil {
			return err
		}
		c.port = port // c is not shared yet
		return c.startServer(ctx)
	})
}

// onFreePort runs start with a port from pick (nil: freePort), and again
// with another while start fails because another process took the port
// first (its error wraps errPortInUse), up to 5 attempts in all.
func onFreePort(ctx context.Context, pick func() (int, error), start func(port int) error) error {
	if pick == nil {
		pick = freePort
	}
	const attempts = 5
	var err error
	for range attempts {
		var port int
		if port, err = pick(); err != nil {
			return err
		}
		if err = start(port); !errors.Is(err, errPortInUse) || ctx.Err() != nil {
			return err
		}
	}
	return fmt.Errorf("no free port after %d attempts: %w", attempts, err)
}

// freePort asks the kernel for a free port on 127.0.0.1. Another process
// may take it before the server binds it; startOnFreePort retries then.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startServer runs pg_ctl start and waits until the server accepts
// connections. The error carries what the server logged during this start.
func (c *Cluster) startServer(ctx context.Context) error {
	var offset int64
	if fi, err := os.Stat(c.logFile); err == nil {
		offset = fi.Size()
	}
	err := c.run(ctx, "pg_ctl", "start", "-D", c.data, "-w", "-l", c.logFile)
	if err == nil {
		return nil
	}
	log := logSince(c.logFile, offset)
	if strings.Contains(log, "Address already in use") {
		err = fmt.Errorf("%w: %w", errPortInUse, err)
	}
	return fmt.Errorf("start server on port %d: %w\nserver log:\n%s", c.port, err, log)
}

// logSince returns the last lines a server wrote to its log file path after
// offset.
func logSince(path string, offset int64) string {
	const maxLines = 40
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, offset, 1<<20))
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-maxLines):], "\n")
}

// stopServer stops the server in pg_ctl's shutdown mode ("fast",
// "immediate"). A server that is not running (it crashed, or was never
// started) counts as stopped.
func (c *Cluster) stopServer(ctx context.Context, mode string) error {
	return pgCtlStop(ctx, c.owner, c.base, c.bin, c.data, mode)
}

// pgCtlStop stops the server of data directory data with bin's pg_ctl, run
// as o in dir, in pg_ctl's shutdown mode. A server that is not running
// (it crashed, or was never started) counts as stopped.
func pgCtlStop(ctx context.Context, o *owner, dir, bin, data, mode string) error {
	pgCtl := filepath.Join(bin, "pg_ctl")
	err := runAs(ctx, o, dir, pgCtl, "stop", "-D", data, "-m", mode, "-w")
	if err == nil {
		return nil
	}
	// pg_ctl status exits with 3 when no server runs, 4 without a data directory.
	if code := exitCode(runAs(ctx, o, dir, pgCtl, "status", "-D", data)); code == 3 || code == 4 {
		return nil
	}
	return err
}

// Restart stops the server (fast shutdown) and starts it again on the same
// port with the same data, as a fault test needs after breaking connections.
// It also starts a server that died.
func (c *Cluster) Restart(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return fmt.Errorf("pgcluster: restart: %w", ErrStopped)
	}
	if err := c.stopServer(ctx, "fast"); err != nil {
		return fmt.Errorf("pgcluster: restart: stop server on port %d: %w", c.port, err)
	}
	if err := c.startServer(ctx); err != nil {
		return fmt.Errorf("pgcluster: restart: %w", err)
	}
	return nil
}

// Stop shuts the server down (fast, then immediate if that fails) and
// removes the cluster's files. It also works after the server died, and a
// second call does nothing. If the server cannot be stopped, its files are
// removed anyway; PostgreSQL exits within a minute of losing its data
// directory's lock file.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true
	var errs []error
	if err := c.stopServer(ctx, "fast"); err != nil {
		if err := c.stopServer(ctx, "immediate"); err != nil {
			errs = append(errs, fmt.Errorf("pgcluster: stop server on port %d: %w", c.port, err))
		}
	}
	c.watchdog.disarm()
	errs = append(errs, c.removeFiles())
	return errors.Join(errs...)
}

// removeFiles removes the data directory and the temporary directory.
func (c *Cluster) removeFiles() error {
	if err := errors.Join(os.RemoveAll(c.data), os.RemoveAll(c.base)); err != nil {
		return fmt.Errorf("pgcluster: remove cluster files: %w", err)
	}
	return nil
}

// DSN returns a URL connecting to database dbname ("" means postgres) as
// superuser postgres over TCP, without TLS:
// postgres://postgres@127.0.0.1:PORT/dbname?sslmode=disable.
func (c *Cluster) DSN(dbname string) string { return dsn(c.Port(), dbname) }

// dsn returns the URL of database dbname ("": postgres) as user postgres at
// 127.0.0.1:port, without TLS.
func dsn(port int, dbname string) string {
	if dbname == "" {
		dbname = "postgres"
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path:     "/" + dbname,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Port returns the TCP port the server listens on at 127.0.0.1.
func (c *Cluster) Port() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.port
}

// DataDir returns the cluster's data directory, which Stop removes.
func (c *Cluster) DataDir() string { return c.data }
