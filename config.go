package piccolo

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresConfig configures a PostgresEngine. The zero value connects with
// the standard PG* environment variables.
type PostgresConfig struct {
	// DSN is a URL (postgres://user@host:5432/db) or key=value string. ""
	// means the PG* environment variables (PGHOST, PGUSER, ...). The pool_*
	// parameters of pgxpool.ParseConfig configure the pool and are stripped
	// for one-shot connections. For a replicated cluster, name every host
	// with target_session_attrs=read-write
	// (postgres://app@db1,db2,db3/app?target_session_attrs=read-write):
	// each new connection goes to the host that accepts writes, whichever
	// it is now (see ReadRouting to send reads to the others).
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
	// healthy extra nodes and, with Discover, to the cluster's standbys (see
	// ReadRouting for what counts as a read, and for pointing the engine at
	// a cluster with a multi-host DSN).
	ReadRouting *ReadRouting

	// Tracer receives pgx's trace events for every statement the engine
	// sends, pipelines included, next to the engine's own logging: pgx
	// tracers (OpenTelemetry's among them) plug in unchanged. It may also
	// implement pgx's BatchTracer, ConnectTracer, PrepareTracer and pgxpool's
	// AcquireTracer and ReleaseTracer.
	Tracer pgx.QueryTracer
	// TxTracer, when set, is told when each transaction block opens and
	// ends (see TxTracer); the piccolootel module makes OpenTelemetry spans
	// of them.
	TxTracer TxTracer
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
	// ConnectTimeout bounds opening a connection (TCP, TLS and the startup
	// exchange), so that a server that accepts and never answers cannot
	// hang StartConnectionPool or a query. Zero keeps the DSN's
	// connect_timeout (or PGCONNECT_TIMEOUT), else DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// AcquireTimeout bounds the wait for a pooled connection when the pool
	// is exhausted (the context's deadline applies too); zero waits as long
	// as the context allows.
	AcquireTimeout time.Duration

	// Configure, when set, adjusts the parsed pgx configuration before the
	// engine uses it: TLS, a custom DialFunc, AfterConnect and other pgx
	// settings the fields above do not cover. Its ConnConfig also serves
	// one-shot connections. A tracer it sets in ConnConfig.Tracer (as pgx
	// integrations such as otelpgx are usually installed) runs beside
	// Tracer and the engine's logging: the engine composes them all.
	Configure func(*pgxpool.Config)
}

// DefaultConnectTimeout bounds opening a connection when neither
// PostgresConfig.ConnectTimeout nor the DSN's connect_timeout says otherwise.
const DefaultConnectTimeout = 10 * time.Second

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
	if cfg.ConnectTimeout < 0 {
		return nil, fmt.Errorf("piccolo: negative ConnectTimeout %v", cfg.ConnectTimeout)
	}
	switch {
	case cfg.ConnectTimeout > 0:
		poolConfig.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	case poolConfig.ConnConfig.ConnectTimeout == 0:
		poolConfig.ConnConfig.ConnectTimeout = DefaultConnectTimeout
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
		txTracer:       cfg.TxTracer,
		nodes:          make(map[string]*PostgresEngine, len(cfg.ExtraNodes)),
	}
	if e.logger == nil {
		e.logger = slog.Default()
	}
	for name, node := range cfg.ExtraNodes {
		e.nodes[name] = node
	}
	var tracers []pgx.QueryTracer
	if t := poolConfig.ConnConfig.Tracer; t != nil { // Configure's
		tracers = append(tracers, t)
	}
	if cfg.Tracer != nil {
		tracers = append(tracers, cfg.Tracer)
	}
	if e.logQueries || e.logResponses {
		tracers = append(tracers, &queryLogger{engine: e})
	}
	switch len(tracers) {
	case 0:
	case 1:
		e.tracer = tracers[0]
	default:
		e.tracer = multitracer.New(tracers...)
	}
	poolConfig.ConnConfig.Tracer = e.tracer
	if poolConfig.ConnConfig.DescriptionCacheCapacity == 0 {
		// Batch fetches through the description cache; without one, describe
		// each time.
		e.fetchMode = pgx.QueryExecModeDescribeExec
	}
	if cfg.ReadRouting != nil {
		if e.router, err = newRouter(e, *cfg.ReadRouting); err != nil {
			return nil, err
		}
	}
	return e, nil
}
