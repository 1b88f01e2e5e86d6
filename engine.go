package piccolo

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Engine is what the query layer needs from an engine: statements that
// report a command tag, statements whose rows are scanned by the caller,
// cursors and transactions. Every method routes by the context: a query runs
// on the context's transaction if there is one, else on the pool if started,
// else on a one-shot connection.
//
// *PostgresEngine is the implementation; the interface keeps the query layer
// free of the engine's internals.
type Engine interface {
	// Exec runs q (a Querystring or any Query) and returns its command tag.
	Exec(ctx context.Context, q Query, opts ...Option) (pgconn.CommandTag, error)
	// QueryFunc runs q, which must be one statement, and calls scan once per row (after
	// rows.Next) while the connection is held; scan must not keep rows
	// after it returns.
	QueryFunc(ctx context.Context, q Query, scan func(pgx.Rows) error, opts ...Option) error
	// CopyFrom loads rows with the COPY protocol and returns how many.
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource, opts ...Option) (int64, error)
	// Batch opens a server-side cursor over q.
	Batch(ctx context.Context, q Query, opts ...Option) (*Batch, error)
	// Transaction runs fn in a transaction carried by the context it is given.
	Transaction(ctx context.Context, fn func(ctx context.Context) error, opts ...TxOption) error
}

var _ Engine = (*PostgresEngine)(nil)

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
	txTracer       TxTracer        // nil: blocks are not traced
	fetchMode      pgx.QueryExecMode
	extensions     []string
	logger         *slog.Logger
	logQueries     bool
	logResponses   bool
	nodes          map[string]*PostgresEngine
	router         *router // nil without ReadRouting

	poolMu sync.Mutex // serialises starting and closing the pool
	pool   atomic.Pointer[pgxpool.Pool]

	idleStatOnce sync.Once
	idleStat     *pgxpool.Stat // Stat without a running pool

	described      sync.Map     // SQL → *pgconn.StatementDescription: Atomic's checks, statements riding with BEGIN
	describedCount atomic.Int64 // bounds described

	closed        atomic.Bool // Close was called: nothing runs any more
	oneShotWarned atomic.Bool // the warning about running without a pool was logged

	queryID  atomic.Uint64 // numbers logged statements
	cursorID atomic.Uint64 // makes cursor names unique per engine
}
