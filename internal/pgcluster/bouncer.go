package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Bouncer pool modes, for BouncerOptions.PoolMode.
const (
	PoolSession     = "session"
	PoolTransaction = "transaction"
	PoolStatement   = "statement"
)

// BouncerOptions configure a PgBouncer. The zero value is ready to use:
// transaction pooling with PgBouncer's default sizes.
type BouncerOptions struct {
	// Binary is the pgbouncer program. Empty: FindBouncer.
	Binary string
	// PoolMode is PoolSession, PoolTransaction or PoolStatement.
	// Empty: PoolTransaction.
	PoolMode string
	// DefaultPoolSize is default_pool_size, the number of server
	// connections per database and user. 0: PgBouncer's default, 20.
	DefaultPoolSize int
	// MaxClientConn is max_client_conn, the number of client connections
	// PgBouncer accepts. 0: PgBouncer's default, 100.
	MaxClientConn int
	// Settings are further [pgbouncer] settings of pgbouncer.ini (name →
	// value), such as server_login_retry or query_wait_timeout; they
	// override pgcluster's defaults (auth_type trust, admin_users postgres,
	// ignore_startup_parameters extra_float_digits). The settings that
	// place PgBouncer's sockets and files are pgcluster's to choose, and
	// those with a field above are set there.
	Settings map[string]string

	// pickPort chooses a port to try; nil: freePort. Tests use it to make
	// the first choice collide.
	pickPort func() (int, error)
	// tempParent is where the temporary directory goes; "": os.TempDir().
	// Tests use it to check that nothing is left behind.
	tempParent string
}

// reservedBouncerSettings are chosen by pgcluster (Port, DSN, Stop and the
// error messages rely on them) or set through a BouncerOptions field.
var reservedBouncerSettings = map[string]string{
	"listen_addr":       "chosen by pgcluster",
	"listen_port":       "chosen by pgcluster",
	"unix_socket_dir":   "chosen by pgcluster",
	"logfile":           "chosen by pgcluster",
	"pidfile":           "chosen by pgcluster",
	"auth_file":         "chosen by pgcluster",
	"syslog":            "chosen by pgcluster", // start errors quote the log file
	"pool_mode":         "set by BouncerOptions.PoolMode",
	"default_pool_size": "set by BouncerOptions.DefaultPoolSize",
	"max_client_conn":   "set by BouncerOptions.MaxClientConn",
}

// Bouncer is a running PgBouncer listening on 127.0.0.1 in front of a
// Cluster, for tests of clients behind a connection pooler. Every user
// listed in its auth file (only postgres) connects without a password, to
// any database of the cluster; the database pgbouncer is its admin console
// (SHOW POOLS…), which speaks only the simple query protocol.
//
// Its methods are safe for concurrent use. Like a Cluster it has a watchdog
// that ends PgBouncer and removes its files if the Go process exits without
// calling Stop.
type Bouncer struct {
	bin     string // the pgbouncer program
	base    string // temporary directory: configuration, log, PID file
	ini     string // pgbouncer.ini
	logFile string // PgBouncer's log, appended to by every start attempt
	errFile string // its standard error: what it says before its log is open
	owner   *owner // OS user running PgBouncer; nil: this process's
	port    int    // set before the Bouncer is shared, then fixed

	mu       sync.Mutex // serialises Stop
	proc     *child
	stopped  bool
	watchdog *watchdog
}

// StartBouncer starts PgBouncer on a free port of 127.0.0.1, pooling
// connections to target, and waits until a query through it succeeds. It
// runs as the OS user that runs target's server (PgBouncer refuses to run
// as root). If ctx ends first, StartBouncer ends whatever it started,
// removes the files and returns an error wrapping ctx's error. The caller
// must call Stop, before stopping target.
//
// PgBouncer 1.18 does not track prepared statements in transaction and
// statement pooling, so pgx connections through it need
// default_query_exec_mode=exec (or simple_protocol, describe_exec) instead
// of pgx's default statement cache.
func StartBouncer(ctx context.Context, target *Cluster, opts BouncerOptions) (*Bouncer, error) {
	if err := validateBouncerOptions(&opts); err != nil {
		return nil, err
	}
	if target == nil {
		return nil, errors.New("pgcluster: start bouncer: no target cluster")
	}
	target.mu.Lock()
	targetPort, stopped := target.port, target.stopped
	target.mu.Unlock()
	if stopped {
		return nil, fmt.Errorf("pgcluster: start bouncer: target: %w", ErrStopped)
	}
	bin, err := givenOr(opts.Binary, FindBouncer)
	if err != nil {
		return nil, err
	}
	if !isExecutable(bin) {
		return nil, fmt.Errorf("pgcluster: %w: %s is not an executable file", ErrNoBouncer, bin)
	}
	base, err := tempDir(opts.tempParent, "pgbouncer-", target.owner)
	if err != nil {
		return nil, err
	}
	b := &Bouncer{
		bin:     bin,
		base:    base,
		ini:     filepath.Join(base, "pgbouncer.ini"),
		logFile: filepath.Join(base, "pgbouncer.log"),
		errFile: filepath.Join(base, "pgbouncer.stderr"),
		owner:   target.owner,
	}
	if err := b.prepare(); err != nil {
		return nil, errors.Join(fmt.Errorf("pgcluster: start bouncer: %w", err), b.removeFiles())
	}
	if err := b.startOnFreePort(ctx, targetPort, opts); err != nil {
		return nil, undoStart(ctx, fmt.Errorf("pgcluster: start bouncer: %w", err), b.Stop)
	}
	return b, nil
}

// validateBouncerOptions fills in the default pool mode and rejects options
// that PgBouncer would refuse or that would corrupt pgbouncer.ini.
func validateBouncerOptions(opts *BouncerOptions) error {
	switch opts.PoolMode {
	case "":
		opts.PoolMode = PoolTransaction
	case PoolSession, PoolTransaction, PoolStatement:
	default:
		return fmt.Errorf("pgcluster: invalid pool mode %q: want %q, %q or %q",
			opts.PoolMode, PoolSession, PoolTransaction, PoolStatement)
	}
	if opts.DefaultPoolSize < 0 || opts.MaxClientConn < 0 {
		return fmt.Errorf("pgcluster: negative DefaultPoolSize (%d) or MaxClientConn (%d)",
			opts.DefaultPoolSize, opts.MaxClientConn)
	}
	for k, v := range opts.Settings {
		if !settingName.MatchString(k) {
			return fmt.Errorf("pgcluster: invalid bouncer setting name %q", k)
		}
		if why, ok := reservedBouncerSettings[strings.ToLower(k)]; ok {
			return fmt.Errorf("pgcluster: bouncer setting %q is %s and cannot be in Settings", k, why)
		}
		if strings.ContainsAny(v, "\n\r\x00") {
			return fmt.Errorf("pgcluster: value of bouncer setting %q contains a line break or NUL", k)
		}
	}
	return nil
}

// prepare writes the auth file and starts the watchdog, before any
// pgbouncer process exists.
func (b *Bouncer) prepare() error {
	// With auth_type trust PgBouncer still admits only the users listed here.
	authFile := filepath.Join(b.base, "users.txt")
	if err := writeOwned(authFile, "\"postgres\" \"\"\n", b.owner); err != nil {
		return err
	}
	w, err := startWatchdog(b.owner, b.base, "pgbouncer-watchdog", bouncerGuardScript, nil, []string{b.base})
	if err != nil {
		return err
	}
	b.watchdog = w
	return nil
}

// writeOwned writes a file only o (nil: this process's user) may read.
func writeOwned(path, content string, o *owner) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return o.chown(path)
}

// bouncerIni is pgbouncer.ini for listening on port in front of the server
// on targetPort. The log file comes first so that PgBouncer logs its
// complaints about the lines after it.
func (b *Bouncer) bouncerIni(port, targetPort int, opts BouncerOptions) string {
	s := map[string]string{
		"listen_addr":               "127.0.0.1",
		"listen_port":               strconv.Itoa(port),
		"unix_socket_dir":           "", // none: a long TMPDIR makes too long a socket path
		"pidfile":                   filepath.Join(b.base, "pgbouncer.pid"),
		"auth_type":                 "trust",
		"auth_file":                 filepath.Join(b.base, "users.txt"),
		"admin_users":               "postgres",
		"pool_mode":                 opts.PoolMode,
		"ignore_startup_parameters": "extra_float_digits", // pgx and others send it
	}
	if opts.DefaultPoolSize > 0 {
		s["default_pool_size"] = strconv.Itoa(opts.DefaultPoolSize)
	}
	if opts.MaxClientConn > 0 {
		s["max_client_conn"] = strconv.Itoa(opts.MaxClientConn)
	}
	maps.Copy(s, opts.Settings) // validated: no reserved names
	var sb strings.Builder
	sb.WriteString("; written by pgcluster for a throw-away PgBouncer\n")
	fmt.Fprintf(&sb, "[databases]\n* = host=127.0.0.1 port=%d\n\n[pgbouncer]\n", targetPort)
	fmt.Fprintf(&sb, "logfile = %s\n", b.logFile)
	for _, k := range slices.Sorted(maps.Keys(s)) {
		fmt.Fprintf(&sb, "%s = %s\n", k, s[k])
	}
	return sb.String()
}

// startOnFreePort starts PgBouncer on a free port, trying other ports when
// another process takes the chosen one first.
func (b *Bouncer) startOnFreePort(ctx context.Context, targetPort int, opts BouncerOptions) error {
	return onFreePort(ctx, opts.pickPort, func(port int) error {
		if err := writeOwned(b.ini, b.bouncerIni(port, targetPort, opts), b.owner); err != nil {
			return err
		}
		b.port = port // b is not shared yet
		return b.startProcess(ctx)
	})
}

// Stop ends PgBouncer, closing its client and server connections, and
// removes its files. It also works after PgBouncer died, and a second call
// does nothing.
func (b *Bouncer) Stop(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return nil
	}
	b.stopped = true
	if b.proc != nil {
		b.proc.stop(ctx)
	}
	b.watchdog.disarm()
	return b.removeFiles()
}

// removeFiles removes the temporary directory.
func (b *Bouncer) removeFiles() error {
	if err := os.RemoveAll(b.base); err != nil {
		return fmt.Errorf("pgcluster: remove bouncer files: %w", err)
	}
	return nil
}

// DSN returns a URL connecting through PgBouncer to database dbname (""
// means postgres) as user postgres over TCP, without TLS:
// postgres://postgres@127.0.0.1:PORT/dbname?sslmode=disable. The database
// pgbouncer is the admin console.
func (b *Bouncer) DSN(dbname string) string { return dsn(b.port, dbname) }

// Port returns the TCP port PgBouncer listens on at 127.0.0.1.
func (b *Bouncer) Port() int { return b.port }
