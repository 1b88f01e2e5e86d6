package piccolo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresConfig configures a PostgresEngine. The zero value connects with
// the standard PG* environment variables.
type PostgresConfig struct {
	// DSN is a URL (postgres://user@host:5432/db) or key=value string. ""
	// means the PG* environment variables (PGHOST, PGUSER, ...). The pool_*
	// parameters of pgxpool.ParseConfig configure the pool and are stripped
	// for one-shot connections.
	DSN string
	// Extensions are created by PrepDatabase.
	Extensions []string
	// LogQueries logs every statement the engine sends (BEGIN, COMMIT,
	// SAVEPOINT and cursor statements included) at Info level with a query
	// id, its arguments and duration.
	LogQueries bool
	// LogResponses logs each statement's command tag and the rows that
	// RunQuerystring and Batch return.
	LogResponses bool
	// Logger receives the logs; nil means slog.Default().
	Logger *slog.Logger
	// ExtraNodes are other engines, usually read replicas, that OnNode(name)
	// routes to. Their pools start and close with this engine's. They are
	// optional at start: one that does not answer when StartConnectionPool
	// runs keeps a pool that connects when used (see StartConnectionPool).
	ExtraNodes map[string]*PostgresEngine
	// ReadRouting, when set, sends reads made outside a transaction to
	// healthy extra nodes (see ReadRouting for what counts as a read).
	ReadRouting *ReadRouting

	// Tracer receives pgx's trace events for every statement the engine
	// sends, pipelines included, next to the engine's own logging: pgx
	// tracers (OpenTelemetry's among them) plug in unchanged. It may also
	// implement pgx's BatchTracer, ConnectTracer, PrepareTracer and pgxpool's
	// AcquireTracer and ReleaseTracer.
	Tracer pgx.QueryTracer
	// QueryExecMode is how pgx sends statements; zero keeps the DSN's
	// default_query_exec_mode, else pgx's default (named prepared statements,
	// cached per connection). Behind PgBouncer in transaction pooling mode
	// use pgx.QueryExecModeExec or pgx.QueryExecModeCacheDescribe, which
	// leave no named prepared statements on the server.
	QueryExecMode pgx.QueryExecMode

	// Pool settings; zero keeps the DSN's pool_* value or pgxpool's default.
	MaxConns          int32
	MinConns          int32
	MaxConnLifetime   time.Duration
	MaxConnIdleTime   time.Duration
	HealthCheckPeriod time.Duration
	// AcquireTimeout bounds the wait for a pooled connection when the pool
	// is exhausted (the context's deadline applies too); zero waits as long
	// as the context allows.
	AcquireTimeout time.Duration

	// Configure, when set, adjusts the parsed pgx configuration before the
	// engine uses it: TLS, a custom DialFunc, AfterConnect and other pgx
	// settings the fields above do not cover. Its ConnConfig also serves
	// one-shot connections. Tracers belong in Tracer: the engine sets
	// ConnConfig.Tracer after Configure runs.
	Configure func(*pgxpool.Config)
}

// PostgresEngine runs queries on PostgreSQL through pgx. It routes every
// query by its context: on the context's transaction if there is one, else
// on the connection pool if started, else on a one-shot connection that is
// always closed afterwards.
//
// A PostgresEngine is safe for concurrent use. Its zero value is not usable:
// create one with NewPostgresEngine.
type PostgresEngine struct {
	poolConfig     *pgxpool.Config
	acquireTimeout time.Duration
	tracer         pgx.QueryTracer // the user's and the logger, composed; nil if neither
	fetchMode      pgx.QueryExecMode
	extensions     []string
	logger         *slog.Logger
	logQueries     bool
	logResponses   bool
	nodes          map[string]*PostgresEngine
	router         *router // nil without ReadRouting

	poolMu sync.Mutex // serialises starting and closing the pool
	pool   atomic.Pointer[pgxpool.Pool]

	described      sync.Map     // SQL → *pgconn.StatementDescription, for Atomic's checks
	describedCount atomic.Int64 // bounds described

	queryID  atomic.Uint64 // numbers logged statements
	cursorID atomic.Uint64 // makes cursor names unique per engine
}

// NewPostgresEngine parses cfg and returns an engine. It does no I/O: the
// first query, Version or StartConnectionPool connects.
func NewPostgresEngine(cfg PostgresConfig) (*PostgresEngine, error) {
	poolConfig, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("piccolo: parse DSN: %w", err)
	}
	if cfg.MaxConns < 0 || cfg.MinConns < 0 {
		return nil, fmt.Errorf("piccolo: negative pool size (MaxConns %d, MinConns %d)", cfg.MaxConns, cfg.MinConns)
	}
	if cfg.MaxConns > 0 {
		poolConfig.MaxConns = cfg.MaxConns
	}
	if cfg.MinConns > 0 {
		poolConfig.MinConns = cfg.MinConns
	}
	if poolConfig.MinConns > poolConfig.MaxConns {
		return nil, fmt.Errorf("piccolo: MinConns %d exceeds MaxConns %d", poolConfig.MinConns, poolConfig.MaxConns)
	}
	if cfg.MaxConnLifetime > 0 {
		poolConfig.MaxConnLifetime = cfg.MaxConnLifetime
	}
	if cfg.MaxConnIdleTime > 0 {
		poolConfig.MaxConnIdleTime = cfg.MaxConnIdleTime
	}
	if cfg.HealthCheckPeriod > 0 {
		poolConfig.HealthCheckPeriod = cfg.HealthCheckPeriod
	}
	if cfg.AcquireTimeout < 0 {
		return nil, fmt.Errorf("piccolo: negative AcquireTimeout %v", cfg.AcquireTimeout)
	}
	if cfg.QueryExecMode != 0 {
		poolConfig.ConnConfig.DefaultQueryExecMode = cfg.QueryExecMode
	}
	if cfg.Configure != nil {
		cfg.Configure(poolConfig)
	}
	for name, node := range cfg.ExtraNodes {
		if node == nil {
			return nil, fmt.Errorf("piccolo: extra node %q is nil", name)
		}
	}
	e := &PostgresEngine{
		poolConfig:     poolConfig,
		acquireTimeout: cfg.AcquireTimeout,
		fetchMode:      pgx.QueryExecModeCacheDescribe,
		extensions:     append([]string(nil), cfg.Extensions...),
		logger:         cfg.Logger,
		logQueries:     cfg.LogQueries,
		logResponses:   cfg.LogResponses,
		nodes:          make(map[string]*PostgresEngine, len(cfg.ExtraNodes)),
	}
	if e.logger == nil {
		e.logger = slog.Default()
	}
	for name, node := range cfg.ExtraNodes {
		e.nodes[name] = node
	}
	if cfg.ReadRouting != nil {
		if e.router, err = newRouter(*cfg.ReadRouting, e.nodes); err != nil {
			return nil, err
		}
	}
	var tracers []pgx.QueryTracer
	if cfg.Tracer != nil {
		tracers = append(tracers, cfg.Tracer)
	}
	if e.logQueries || e.logResponses {
		tracers = append(tracers, &queryLogger{engine: e})
	}
	switch len(tracers) {
	case 1:
		e.tracer = tracers[0]
	case 2:
		e.tracer = multitracer.New(tracers...)
	}
	poolConfig.ConnConfig.Tracer = e.tracer
	if poolConfig.ConnConfig.DescriptionCacheCapacity == 0 {
		// Batch fetches through the description cache; without one, describe
		// each time.
		e.fetchMode = pgx.QueryExecModeDescribeExec
	}
	return e, nil
}

// Node returns the extra node registered under name, or ErrUnknownNode.
func (e *PostgresEngine) Node(name string) (*PostgresEngine, error) {
	node, ok := e.nodes[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownNode, name)
	}
	return node, nil
}

// StartConnectionPool starts the engine's pool and those of its extra nodes,
// and checks that each server answers. The engine's own server must answer:
// if it does not, the error says why and no pool this call started stays.
// An extra node that does not answer (every one, routed or not) does not
// stop the start: its pool is kept and connects when used, a warning names
// the node, ReadRouting skips it until a health check passes, and OnNode
// returns the connection error. ctx bounds the start: if it ends, the call
// fails. A second call keeps the running pools and logs a warning.
func (e *PostgresEngine) StartConnectionPool(ctx context.Context) error {
	started, err := e.startPool(ctx, func(err error) error {
		return fmt.Errorf("piccolo: start pool: %w", err)
	})
	if err != nil {
		return err
	}
	startedHere := []*PostgresEngine{}
	if started {
		startedHere = append(startedHere, e)
	}
	for name, node := range e.nodes {
		started, err := node.startPool(ctx, func(err error) error {
			if ctx.Err() != nil {
				return err
			}
			e.logger.LogAttrs(ctx, slog.LevelWarn, "piccolo: extra node does not answer; its pool connects when used",
				slog.String("node", name), slog.String("reason", err.Error()))
			return nil
		})
		if err != nil {
			// Leave nothing half-started by this call: the caller sees one
			// failure. Pools that were running before stay.
			for _, eng := range startedHere {
				eng.closeOwnPool()
			}
			return fmt.Errorf("piccolo: start pool of node %q: %w", name, err)
		}
		if started {
			startedHere = append(startedHere, node)
		}
	}
	if e.router != nil {
		e.router.start(ctx, e.logger)
	}
	return nil
}

// startPool starts e's own pool and reports whether it started one. When
// the server does not answer a ping, noAnswer decides: an error closes the
// pool and is returned; nil keeps the pool, which connects when used.
func (e *PostgresEngine) startPool(ctx context.Context, noAnswer func(error) error) (bool, error) {
	e.poolMu.Lock()
	defer e.poolMu.Unlock()
	if e.pool.Load() != nil {
		e.logger.WarnContext(ctx, "piccolo: a connection pool is already running; keeping it")
		return false, nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, e.poolConfig.Copy())
	if err != nil {
		return false, fmt.Errorf("piccolo: create pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		if err := noAnswer(err); err != nil {
			pool.Close()
			return false, err
		}
	}
	e.pool.Store(pool)
	return true, nil
}

// closeOwnPool closes e's pool, not its nodes'.
func (e *PostgresEngine) closeOwnPool() {
	e.poolMu.Lock()
	p := e.pool.Swap(nil)
	e.poolMu.Unlock()
	if p != nil {
		p.Close()
	}
}

// CloseConnectionPool closes the engine's pool and its nodes' pools. It
// waits for borrowed connections to come back until ctx ends, then returns
// ctx's error while the pools finish closing in the background. It returns
// ErrNoPool when the engine has no pool running.
func (e *PostgresEngine) CloseConnectionPool(ctx context.Context) error {
	e.haltRouter()
	pools := e.detachPools()
	if len(pools) == 0 {
		return ErrNoPool
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, p := range pools {
			p.Close()
		}
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("piccolo: close pool: borrowed connections still out: %w", ctx.Err())
	}
}

// Close closes the engine's and its nodes' pools, waiting for every
// borrowed connection to come back. It is safe to call more than once and
// when no pool is running.
func (e *PostgresEngine) Close() {
	e.closeAll()
}

func (e *PostgresEngine) closeAll() {
	e.haltRouter()
	for _, p := range e.detachPools() {
		p.Close()
	}
}

func (e *PostgresEngine) haltRouter() {
	if e.router != nil {
		e.router.halt()
	}
}

// detachPools removes the engine's and its nodes' pools so that new queries
// use one-shot connections, and returns them for closing.
func (e *PostgresEngine) detachPools() []*pgxpool.Pool {
	var pools []*pgxpool.Pool
	for _, eng := range append([]*PostgresEngine{e}, e.nodeList()...) {
		eng.poolMu.Lock()
		if p := eng.pool.Swap(nil); p != nil {
			pools = append(pools, p)
		}
		eng.poolMu.Unlock()
	}
	return pools
}

func (e *PostgresEngine) nodeList() []*PostgresEngine {
	nodes := make([]*PostgresEngine, 0, len(e.nodes))
	for _, n := range e.nodes {
		nodes = append(nodes, n)
	}
	return nodes
}

// Stats returns the pool's statistics, or nil when no pool is running.
func (e *PostgresEngine) Stats() *pgxpool.Stat {
	if p := e.pool.Load(); p != nil {
		return p.Stat()
	}
	return nil
}

// Version is a PostgreSQL server version: 15.18 is {15, 18}. Before
// PostgreSQL 10 the two parts were the major version (9.6 is {9, 6}).
type Version struct {
	Major, Minor int
}

// String returns the version as PostgreSQL writes it, e.g. "15.18".
func (v Version) String() string {
	return strconv.Itoa(v.Major) + "." + strconv.Itoa(v.Minor)
}

// parseVersionNum parses server_version_num: 150018 is 15.18, 90624 is 9.6.
func parseVersionNum(s string) (Version, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return Version{}, fmt.Errorf("piccolo: unexpected server_version_num %q", s)
	}
	if n >= 100000 {
		return Version{Major: n / 10000, Minor: n % 10000}, nil
	}
	return Version{Major: n / 10000, Minor: n / 100 % 100}, nil
}

// Version returns the server's version, parsed from server_version_num so
// that 14.10 is not mistaken for 14.1. Versions before 10 log a warning:
// piccolo-go is not tested on them.
func (e *PostgresEngine) Version(ctx context.Context, opts ...Option) (Version, error) {
	var s string
	err := e.QueryFunc(ctx, Querystring{SQL: "SHOW server_version_num"}, func(rows pgx.Rows) error {
		return rows.Scan(&s)
	}, opts...)
	if err != nil {
		return Version{}, err
	}
	v, err := parseVersionNum(s)
	if err != nil {
		return Version{}, err
	}
	if v.Major < 10 {
		e.logger.WarnContext(ctx, "piccolo: PostgreSQL version is not supported; use 10 or later", "version", v.String())
	}
	return v, nil
}

// PrepDatabase creates the configured extensions if they do not exist.
// Missing privileges log a warning and go on (the extension may be created
// by an administrator); any other error is returned.
func (e *PostgresEngine) PrepDatabase(ctx context.Context) error {
	for _, ext := range e.extensions {
		quoted, err := QuoteIdentifier(ext)
		if err != nil {
			return fmt.Errorf("piccolo: extension name: %w", err)
		}
		err = e.RunDDL(ctx, "CREATE EXTENSION IF NOT EXISTS "+quoted)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.InsufficientPrivilege {
			e.logger.WarnContext(ctx, "piccolo: cannot create extension: insufficient privilege; ask an administrator to create it",
				"extension", ext, "error", pgErr.Message)
			continue
		}
		if err != nil {
			return fmt.Errorf("piccolo: create extension %q: %w", ext, err)
		}
	}
	return nil
}

// RunQuerystring runs one statement and returns its rows as maps from
// column name to value.
func (e *PostgresEngine) RunQuerystring(ctx context.Context, q Querystring, opts ...Option) ([]map[string]any, error) {
	var out []map[string]any
	err := e.QueryFunc(ctx, q, func(rows pgx.Rows) error {
		row, err := pgx.RowToMap(rows)
		if err != nil {
			return err
		}
		out = append(out, row)
		return nil
	}, opts...)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RunDDL runs a DDL string. It may hold several statements separated by
// semicolons; it takes no arguments. Inside a transaction of the engine, a
// script that would begin or end that transaction (BEGIN, COMMIT,
// ROLLBACK... anywhere in it) is refused with ErrTransactionControl before
// anything is sent; outside one, a script may hold its own BEGIN and COMMIT.
func (e *PostgresEngine) RunDDL(ctx context.Context, ddl string, opts ...Option) error {
	_, err := e.Exec(ctx, Querystring{SQL: ddl}, opts...)
	return err
}

// Exec runs one statement and returns its command tag (e.g. "INSERT 0 3").
// Without arguments it may hold several statements. Inside a transaction of
// the engine it refuses SQL that would begin or end that transaction, as
// RunDDL does.
func (e *PostgresEngine) Exec(ctx context.Context, q Querystring, opts ...Option) (pgconn.CommandTag, error) {
	return e.statement(ctx, opts, q, nil)
}

// QueryFunc runs one statement and calls scan once per row (after
// rows.Next) while the connection is held. scan must not keep rows after
// it returns; a statement it runs in the same transaction returns
// ErrConnBusy (collect the rows first).
func (e *PostgresEngine) QueryFunc(ctx context.Context, q Querystring, scan func(pgx.Rows) error, opts ...Option) error {
	if scan == nil {
		return errors.New("piccolo: QueryFunc: nil scan function")
	}
	_, err := e.statement(ctx, opts, q, scan)
	return err
}

// statement is the one place that decides where a statement runs: the
// named node, else the context's transaction, else the pool, else a
// one-shot connection that is closed whatever happens. scan nil means the
// rows are not wanted.
func (e *PostgresEngine) statement(ctx context.Context, opts []Option, q Querystring, scan func(pgx.Rows) error) (pgconn.CommandTag, error) {
	scan, logRows := e.logScan(scan)
	tag, err := e.route(ctx, opts, q, scan)
	if err == nil && scan != nil {
		logRows(ctx)
	}
	return tag, err
}

// route runs q where the options and the context send it. A routed read
// whose replica fails at the connection level (nodeDown: the replica is
// down) before any row reached scan marks the replica down and runs again
// on the primary: a read may run twice, which is what Read declares
// harmless. Any other failure is returned naming the replica, which stays
// in use.
func (e *PostgresEngine) route(ctx context.Context, opts []Option, q Querystring, scan func(pgx.Rows) error) (pgconn.CommandTag, error) {
	ro := collectRunOptions(opts)
	if err := ctx.Err(); err != nil {
		return pgconn.CommandTag{}, err
	}
	if err := checkSize(q); err != nil {
		return pgconn.CommandTag{}, err
	}
	target, node, err := e.target(ctx, ro)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, seen, err := target.runOn(ctx, q, scan)
	if err != nil && node != "" && !ro.onNode && seen == 0 && ctx.Err() == nil && nodeDown(err) {
		e.router.markDown(node)
		node = ""
		tag, _, err = e.runOn(ctx, q, scan)
	}
	if err != nil {
		return tag, onNode(node, statementError(q.SQL, err))
	}
	return tag, nil
}

// runOn runs q on e: in the context's transaction if there is one, else on
// a connection of its own. It also returns how many rows scan saw.
func (e *PostgresEngine) runOn(ctx context.Context, q Querystring, scan func(pgx.Rows) error) (pgconn.CommandTag, int, error) {
	if tx := e.txFrom(ctx); tx != nil {
		return tx.statement(ctx, q, scan)
	}
	return e.runOnConn(ctx, q, scan)
}

// CopyFrom copies rows into table with PostgreSQL's COPY protocol, the
// fastest way to load many rows, and returns how many it copied. It routes
// like Exec: inside the context's transaction if there is one, else to the
// primary or the node OnNode names (Read is ignored: COPY writes). COPY
// returns no generated ids; use an INSERT ... RETURNING when you need them.
func (e *PostgresEngine) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource, opts ...Option) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var n int64
	copyOn := func(ctx context.Context, conn *pgx.Conn) (err error) {
		n, err = conn.CopyFrom(ctx, table, columns, src)
		return err
	}
	ro := collectRunOptions(opts)
	ro.read = false
	err := e.onTarget(ctx, ro, func(target *PostgresEngine) error {
		var err error
		if tx := target.txFrom(ctx); tx != nil {
			err = tx.withScan(ctx, copyOn) // src runs the caller's code
		} else {
			var l lease
			if l, err = target.acquire(ctx); err != nil {
				return err
			}
			defer l.release()
			err = copyOn(ctx, l.conn)
		}
		if err != nil {
			return fmt.Errorf("piccolo: copy into %s: %w", table.Sanitize(), err)
		}
		return nil
	})
	return n, err
}

// maxMessage is PostgreSQL's limit on one protocol message (1 GB less a
// byte): a statement and its arguments travel in one.
const maxMessage = 1<<30 - 1

// checkSize refuses, before any copying or I/O, a statement that cannot
// fit in one protocol message: sending it would only cost seconds and
// gigabytes before pgx or the server refused it.
func checkSize(q Querystring) error {
	size := len(q.SQL)
	for _, a := range q.Args {
		switch a := a.(type) {
		case string:
			size += len(a)
		case []byte:
			size += len(a)
		}
	}
	if size > maxMessage {
		return fmt.Errorf("piccolo: statement too large: %d bytes of SQL and arguments, PostgreSQL takes at most %d in one message", size, maxMessage)
	}
	return nil
}

// runOnConn runs q on a connection of its own: pooled, or one-shot. A
// statement that fails once sent is not sent again, whatever the failure:
// the server may have run it, or part of it (acquire has already set aside
// pooled connections whose session had ended before).
func (e *PostgresEngine) runOnConn(ctx context.Context, q Querystring, scan func(pgx.Rows) error) (pgconn.CommandTag, int, error) {
	l, err := e.acquire(ctx)
	if err != nil {
		return pgconn.CommandTag{}, 0, err
	}
	defer l.release()
	tag, seen, err := runStatement(ctx, l.conn, q, scan)
	return tag, seen, markLost(l.conn, err)
}

// runStatement runs q on conn and hands its rows to scan (nil: Exec).
// It also returns how many rows scan saw.
func runStatement(ctx context.Context, conn *pgx.Conn, q Querystring, scan func(pgx.Rows) error) (pgconn.CommandTag, int, error) {
	if scan == nil {
		tag, err := conn.Exec(ctx, q.SQL, q.Args...)
		return tag, 0, err
	}
	rows, err := conn.Query(ctx, q.SQL, q.Args...)
	if err != nil {
		return pgconn.CommandTag{}, 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
		if err := scan(rows); err != nil {
			return pgconn.CommandTag{}, n, err
		}
	}
	rows.Close()
	return rows.CommandTag(), n, rows.Err()
}

// sessionEnded reports whether err is the server ending the session: the
// backend was terminated (57P01), the server shut down (57P02) or is
// starting (57P03). It does not say when: before the statement was sent,
// or while it ran (then the statement may have taken effect: a nextval, a
// commit whose answer was lost). Only work that has no effect outside the
// session (BEGIN) may be sent again after it.
func sessionEnded(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case pgerrcode.AdminShutdown, pgerrcode.CrashShutdown, pgerrcode.CannotConnectNow:
		return true
	}
	return false
}

// resetPool closes the pool's idle connections, which a session that ended
// under one of them says are likely dead too (a server restart ends them
// all); connections in use close when they come back. acquire would find
// each dead one before use; resetting spares it the attempts.
func (e *PostgresEngine) resetPool() {
	if p := e.pool.Load(); p != nil {
		p.Reset()
	}
}

// statementError names the statement that failed, keeping the cause
// reachable. Errors of the engine's own (ErrTransactionDone...) pass as they are.
func statementError(sql string, err error) error {
	if errors.Is(err, ErrTransactionDone) || errors.Is(err, ErrUnknownNode) {
		return err
	}
	const max = 80
	if len(sql) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(sql[cut]) {
			cut--
		}
		sql = sql[:cut] + "…"
	}
	return fmt.Errorf("piccolo: %q: %w", sql, err)
}

// connFunc is work done on one connection.
type connFunc func(ctx context.Context, conn *pgx.Conn) error

// lease is a connection borrowed from the pool, or opened for one use.
type lease struct {
	conn   *pgx.Conn
	pooled *pgxpool.Conn   // nil for a one-shot connection
	ctx    context.Context // the borrower's, for closing a one-shot connection
}

// release gives a pooled connection back, or closes a one-shot one even
// when the borrower's context has ended.
func (l lease) release() {
	if l.pooled != nil {
		l.pooled.Release()
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(l.ctx), closeTimeout)
	defer cancel()
	_ = l.conn.Close(ctx)
}

// acquire borrows a connection from the pool, or opens a one-shot
// connection when no pool is running.
//
// A pooled connection whose session the server ended while it sat idle
// (pg_terminate_backend, a server restart, idle_session_timeout) is
// discarded before anything is sent on it, and another one is taken: that
// work provably never reached the server. This is the engine's only
// transparent retry of a failed session; a statement that meets the end of
// its session after it was sent is never sent again.
func (e *PostgresEngine) acquire(ctx context.Context) (lease, error) {
	if pool := e.pool.Load(); pool != nil {
		if e.acquireTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, e.acquireTimeout)
			defer cancel()
		}
		// Every connection the pool held may be dead (a restart ends them
		// all): one more attempt than it holds reaches a fresh one.
		for range e.poolConfig.MaxConns + 1 {
			pc, err := pool.Acquire(ctx)
			if err != nil {
				return lease{}, fmt.Errorf("piccolo: acquire connection: %w", err)
			}
			if sessionAlive(pc.Conn().PgConn()) {
				return lease{conn: pc.Conn(), pooled: pc}, nil
			}
			pc.Release() // closed: the pool destroys it
		}
		return lease{}, fmt.Errorf("piccolo: acquire connection: %w", errSessionsEnded)
	}
	conn, err := pgx.ConnectConfig(ctx, e.poolConfig.ConnConfig.Copy())
	if err != nil {
		return lease{}, fmt.Errorf("piccolo: connect: %w", err)
	}
	return lease{conn: conn, ctx: ctx}, nil
}

// errSessionsEnded is why acquire gave up: the server had ended the
// session of every pooled connection it tried.
var errSessionsEnded = errors.New("the server ended the session of every connection tried; is it restarting?")

// closeTimeout bounds the statements that clean up after a failure or a
// cancelled context (ROLLBACK, CLOSE, Terminate): they run even when the
// caller's context has ended, but never hang.
const closeTimeout = 5 * time.Second
