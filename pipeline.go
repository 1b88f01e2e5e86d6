package piccolo

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Sending statements that are ready in one pipeline: one write, one Sync,
// one round trip. A statement is ready once it is described (from the
// engine's cache) and its arguments are encoded: nothing can then fail
// before the server sees it, so a pipeline never leaves half of its
// statements unsent for a client-side reason. The server runs them in
// order and skips everything after a failure up to the Sync, as separate
// sends inside a transaction would (the transaction is then aborted).

// piped is a statement ready for a pipeline.
type piped struct {
	sql     string
	args    []any                        // for the tracer
	sd      *pgconn.StatementDescription // nil: a statement without parameters (BEGIN, COMMIT, FETCH)
	params  [][]byte
	formats []int16
	results []int16
	scan    func(pgx.Rows) error // nil: rows are discarded
	tag     pgconn.CommandTag
	// scanErr is scan's failure: the statement ran on the server, and so
	// did the ones after it.
	scanErr error
}

// bare returns sql, a statement without parameters or rows (BEGIN,
// SAVEPOINT, COMMIT), ready for a pipeline.
func bare(sql string) *piped { return &piped{sql: sql} }

// ready returns q ready for a pipeline on conn, with scan reading its rows
// (nil: discarded), or nil when it cannot ride (see canRide), is not
// described yet, or its arguments do not encode against its description
// (the schema may have changed: it then goes the usual way, which
// describes it again).
func (e *PostgresEngine) ready(conn *pgx.Conn, q Querystring, scan func(pgx.Rows) error) *piped {
	if !e.canRide(q) {
		return nil
	}
	sd := e.description(q.SQL)
	if sd == nil {
		return nil
	}
	var eqb pgx.ExtendedQueryBuilder
	if eqb.Build(conn.TypeMap(), sd, q.Args) != nil {
		return nil
	}
	return &piped{sql: q.SQL, args: q.Args, sd: sd, params: eqb.ParamValues,
		formats: eqb.ParamFormats, results: eqb.ResultFormats, scan: scan}
}

// sendPipeline sends ps in one pipeline and reads their results in order,
// tracing each statement on its own. It returns how many of them ran, and
// the failure of the next one: the server's error (what followed it was
// skipped), or the connection's. A scan callback's failure stops nothing
// (the server ran what follows anyway): it is kept in the statement's
// scanErr. sent reports whether the pipeline may have reached the server
// (false: a write failure that sent nothing).
func (e *PostgresEngine) sendPipeline(ctx context.Context, conn *pgx.Conn, ps []*piped) (ran int, sent bool, err error) {
	p := conn.PgConn().StartPipeline(ctx)
	if ran, sent, err = e.pipe(ctx, conn, p, ps, nil); err != nil {
		return ran, sent, err
	}
	return ran, sent, p.Close()
}

// pipe sends ps, then unread (unless nil), in p, and reads the results of
// ps as sendPipeline does. It closes p when it fails; otherwise p stays
// open, with unread's result (if any) not read yet.
func (e *PostgresEngine) pipe(ctx context.Context, conn *pgx.Conn, p *pgconn.Pipeline, ps []*piped, unread *piped) (ran int, sent bool, err error) {
	for i, s := range ps {
		switch {
		case s.sd == nil:
			p.SendQueryParams(s.sql, nil, nil, nil, s.results)
		case i > 0 && ps[i-1].sd == s.sd:
			// The same statement again: bind the unnamed statement the
			// previous one parsed, instead of parsing it again.
			p.SendQueryPrepared("", s.params, s.formats, s.results)
		default:
			p.SendQueryParams(s.sql, s.params, s.sd.ParamOIDs, s.formats, s.results)
		}
	}
	if unread != nil {
		// Flush: the server sends the answers to ps at once, instead of
		// with unread's, which may take long to run.
		p.SendFlushRequest()
		p.SendQueryParams(unread.sql, nil, nil, nil, unread.results)
	}
	if err := p.Sync(); err != nil {
		_ = p.Close()
		return 0, !pgconn.SafeToRetry(err), err
	}
	for i, s := range ps {
		s.tag, err = e.traced(ctx, conn, s.sql, s.args, func() (pgconn.CommandTag, error) {
			rr, err := nextResult(p)
			if err != nil || s.scan == nil {
				return closeResult(rr, err)
			}
			tag, _, err := readRows(resultRows(conn, rr), s.scan)
			if err != nil {
				// The rows were read to their end: a failure of the
				// statement itself is the result's.
				if tag, rrErr := rr.Close(); rrErr == nil && !conn.IsClosed() {
					s.scanErr = err
					return tag, err
				}
			}
			return tag, err
		})
		if err != nil && s.scanErr == nil {
			if closeErr := p.Close(); closeErr != nil && !fromServer(err) && !errors.Is(closeErr, err) && closeErr.Error() != err.Error() {
				err = errors.Join(err, closeErr)
			}
			if s.sd != nil && staleDescription(err) {
				e.forgetDescription(s.sql)
			}
			return i, true, err
		}
	}
	return len(ps), true, nil
}
