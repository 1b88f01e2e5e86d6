package piccolo

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo/internal/sqltext"
)

// A transaction's pending BEGIN and SAVEPOINTs ride with the statement
// that needs them: one pipeline, one round trip, where sending them alone
// first would cost two. The order that keeps this safe: the statement is
// described (from the engine's cache) and its arguments encoded before
// anything is sent; a statement that is not ready goes as before, after
// the pending statements.
//
// Inside the pipeline, one Sync ends it all, so a failure skips what
// follows, as PostgreSQL's own error recovery does: a failed BEGIN or
// SAVEPOINT runs nothing after it (the statement's error is then theirs,
// as when they travel alone), and a failed statement leaves the
// transaction aborted with its savepoints in place, exactly as separate
// sends would. Each statement is traced (logged) on its own.

// rider is a statement that may ride with the pending statements, and what
// it returned when it did.
type rider struct {
	q    Querystring
	scan func(pgx.Rows) error // nil: Exec
	tag  pgconn.CommandTag
	seen int // rows scan saw
}

// ride sends stmts, the pending statements, with r in one pipeline when r
// is a single data statement (sqltext.IsData: it changes no schema a later
// description could depend on) in an exec mode that describes statements
// anyway. handled false: nothing was sent, and the caller sends stmts as
// before (or again on a fresh connection, when the session had ended
// under BEGIN). rode: r ran or failed on the server, and err is its
// outcome; otherwise err is that of the pending statements, and a nil err
// means they ran and r was described on the way: the caller runs it.
//
// A statement whose description is not cached yet is described in the
// pipeline instead (Parse and Describe, executing nothing), so it rides
// the next time.
func (c *txConn) ride(ctx context.Context, stmts []string, withBegin bool, r *rider) (rode, handled bool, err error) {
	e := c.engine
	if !e.canRide(r.q) {
		return false, false, nil
	}
	var eqb pgx.ExtendedQueryBuilder
	sd := e.description(r.q.SQL)
	if sd != nil && eqb.Build(c.conn.TypeMap(), sd, r.q.Args) != nil {
		sd = nil // the schema may have changed: describe again
	}
	p := c.conn.PgConn().StartPipeline(ctx)
	for _, s := range stmts {
		p.SendQueryParams(s, nil, nil, nil, nil)
	}
	if sd != nil {
		p.SendQueryParams(r.q.SQL, eqb.ParamValues, sd.ParamOIDs, eqb.ParamFormats, eqb.ResultFormats)
	} else {
		p.SendPrepare("", r.q.SQL, nil)
	}
	err = p.Sync()
	for i := 0; err == nil && i < len(stmts); i++ {
		_, err = e.traced(ctx, c.conn, stmts[i], nil, func() (pgconn.CommandTag, error) { return closeResult(nextResult(p)) })
	}
	if err != nil {
		_ = p.Close()
		if withBegin && sessionEnded(err) {
			var replaced bool
			if replaced, err = e.replaceEnded(ctx, &c.lease, err); replaced {
				c.conn = c.lease.conn
				return false, false, nil
			}
		}
		return false, true, c.delivered(stmts, withBegin, err)
	}
	_ = c.delivered(stmts, withBegin, nil)
	if sd == nil {
		if sd, err = describeResult(p); err != nil {
			return true, true, err
		}
		e.rememberDescription(r.q.SQL, sd)
		return false, true, nil
	}
	r.tag, err = e.traced(ctx, c.conn, r.q.SQL, r.q.Args, func() (pgconn.CommandTag, error) {
		rr, err := nextResult(p)
		if err != nil || r.scan == nil {
			return closeResult(rr, err)
		}
		var tag pgconn.CommandTag
		tag, r.seen, err = readRows(resultRows(c.conn, rr), r.scan)
		return tag, err
	})
	if closeErr := p.Close(); err == nil {
		err = closeErr
	}
	if staleDescription(err) {
		e.forgetDescription(r.q.SQL)
	}
	return true, true, err
}

// canRide reports whether q may ride in a pipeline: a single data
// statement, its arguments plain values (no pgx.QueryExecMode or
// QueryRewriter such as pgx.NamedArgs, which pgx alone knows how to
// apply), on connections that describe statements anyway (the cache
// modes, or describe-exec: in exec and simple-protocol modes a describe
// would be a new failure of its own).
func (e *PostgresEngine) canRide(q Querystring) bool {
	switch e.poolConfig.ConnConfig.DefaultQueryExecMode {
	case pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeDescribeExec:
	default:
		return false
	}
	if len(q.Args) > 0 {
		switch q.Args[0].(type) {
		case pgx.QueryExecMode, pgx.QueryRewriter:
			return false
		}
	}
	return sqltext.IsData(q.SQL)
}

// nextResult returns the result of the next statement of p.
func nextResult(p *pgconn.Pipeline) (*pgconn.ResultReader, error) {
	return pipelineResult[*pgconn.ResultReader](p)
}

// pipelineResult returns the next result of p, which must be a T.
func pipelineResult[T any](p *pgconn.Pipeline) (T, error) {
	var zero T
	res, err := p.GetResults()
	if err != nil {
		return zero, err
	}
	r, ok := res.(T)
	if !ok {
		return zero, fmt.Errorf("piccolo: pipeline: unexpected result %T", res)
	}
	return r, nil
}

// closeResult reads a result with no rows wanted to its end.
func closeResult(rr *pgconn.ResultReader, err error) (pgconn.CommandTag, error) {
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	return rr.Close()
}

// describeResult reads the description the last request of p asked for,
// and closes p.
func describeResult(p *pgconn.Pipeline) (*pgconn.StatementDescription, error) {
	sd, err := pipelineResult[*pgconn.StatementDescription](p)
	if closeErr := p.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return nil, err
	}
	return sd, nil
}

// maxDescribed bounds the engine's cache of statement descriptions.
const maxDescribed = 4096

// description returns the cached description of sql, or nil.
func (e *PostgresEngine) description(sql string) *pgconn.StatementDescription {
	if sd, ok := e.described.Load(sql); ok {
		return sd.(*pgconn.StatementDescription)
	}
	return nil
}

// rememberDescription caches sd, the description of sql, while the cache
// holds fewer than maxDescribed.
func (e *PostgresEngine) rememberDescription(sql string, sd *pgconn.StatementDescription) {
	if _, ok := e.described.Load(sql); ok {
		e.described.Store(sql, sd)
		return
	}
	if e.describedCount.Add(1) > maxDescribed {
		e.describedCount.Add(-1)
		return
	}
	e.described.Store(sql, sd)
}

// staleDescription reports whether err, a statement's failure, may come
// from a description the schema has changed under: a server error about
// the statement's text, types or protocol (classes 42, 08, 0A, 26), as
// opposed to its data (a constraint, a serialization failure), where the
// description was right.
func staleDescription(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) < 2 {
		return false
	}
	switch pgErr.Code[:2] {
	case "42", "08", "0A", "26":
		return true
	}
	return false
}

// forgetDescription drops the cached description of sql.
func (e *PostgresEngine) forgetDescription(sql string) {
	if _, ok := e.described.LoadAndDelete(sql); ok {
		e.describedCount.Add(-1)
	}
}

// traced runs run, one statement's exchange, between the tracer's start
// and end of sql, as pgx does for the statements it sends itself.
func (e *PostgresEngine) traced(ctx context.Context, conn *pgx.Conn, sql string, args []any, run func() (pgconn.CommandTag, error)) (pgconn.CommandTag, error) {
	if e.tracer == nil {
		return run()
	}
	ctx = e.tracer.TraceQueryStart(ctx, conn, pgx.TraceQueryStartData{SQL: sql, Args: args})
	tag, err := run()
	e.tracer.TraceQueryEnd(ctx, conn, pgx.TraceQueryEndData{CommandTag: tag, Err: err})
	return tag, err
}
