package piccolo

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A Batch outside a transaction opens in one round trip: BEGIN, DECLARE
// and the first FETCH travel in one pipeline, every later FETCH goes
// without a describe (its columns' formats are those of the query's
// description), and the rows end with one COMMIT, which closes the cursor.
// The query is described (from the engine's cache, or alone, before BEGIN)
// and its arguments encoded before anything is sent; a query that is not
// ready opens the usual way.
//
// Batch reads the answers to BEGIN and DECLARE and leaves the first
// FETCH's rows on the connection, unread, for the first Next: that Next
// reads them under its own context, exactly as if it had sent the FETCH
// (the server ran it meanwhile), and the rows stream from the connection to
// its scan callback as any FETCH's do. pgconn watches one context for a
// pipeline's whole life, so the pipeline gets a context of its own
// (see firstFetch), ended for it when the context of whichever call is
// reading (Batch, then Next, Close or the cleanup of a batch never closed)
// ends.

// firstFetch is a Batch's first FETCH while its rows wait on the
// connection, in the pipeline that declared the cursor.
type firstFetch struct {
	p      *pgconn.Pipeline // nil: nothing is waiting
	cancel context.CancelFunc
}

// openInOne declares b's cursor over q, with declare, in one pipeline
// with its own transaction's BEGIN and the first FETCH, whose rows it
// leaves unread in b.first. handled false: nothing was sent (b is in the
// caller's transaction, q cannot ride, see canRide, or failed to describe
// or encode), and the caller opens it the usual way, which reports any
// failure. Otherwise err is the failure of BEGIN or DECLARE.
func (b *Batch) openInOne(ctx context.Context, q Querystring, declare string) (handled bool, err error) {
	e, t := b.engine, b.tx
	c := t.c
	if !b.own || !e.canRide(q) || ctx.Err() != nil || c.lock(ctx) != nil {
		return false, nil
	}
	defer c.unlock()
	conn := c.conn
	var eqb pgx.ExtendedQueryBuilder
	sd := e.description(q.SQL)
	if sd == nil || eqb.Build(conn.TypeMap(), sd, q.Args) != nil {
		// Described outside the transaction, which has sent nothing yet.
		d, err := conn.PgConn().Prepare(ctx, "", q.SQL, nil)
		if err != nil || eqb.Build(conn.TypeMap(), d, q.Args) != nil {
			return false, nil
		}
		e.rememberDescription(q.SQL, d)
		sd = d
	}
	pending, withBegin, err := t.takePending(0)
	if err != nil {
		return true, err
	}
	ps := make([]*piped, 0, len(pending)+1)
	for _, s := range pending {
		ps = append(ps, bare(s))
	}
	// DECLARE takes the query's parameters; FETCH returns the query's
	// columns, in the formats its description picks.
	ps = append(ps, &piped{sql: declare, args: q.Args, sd: sd, params: eqb.ParamValues, formats: eqb.ParamFormats})
	fetch := &piped{sql: b.fetch, results: eqb.ResultFormats}
	f := b.first
	ran, _, err := c.sendFirst(ctx, withBegin, func(conn *pgx.Conn) (int, bool, error) {
		var pctx context.Context
		pctx, f.cancel = context.WithCancel(context.WithoutCancel(ctx))
		f.p = conn.PgConn().StartPipeline(pctx)
		stop := context.AfterFunc(ctx, f.cancel)
		ran, sent, err := e.pipe(ctx, conn, f.p, ps, fetch)
		if !stop() {
			// ctx ended, and with it the pipeline's context: even with
			// the answers in, the rows left could not be read.
			err = endedWith(ctx, err)
		}
		if err != nil {
			_ = f.drop(ctx)
		}
		return ran, sent, err
	})
	if k := len(pending); ran < k {
		return true, markLost(c.conn, c.delivered(pending, withBegin, err))
	}
	_ = c.delivered(pending, withBegin, nil)
	if err != nil {
		// The DECLARE may have failed on the query's description, cached
		// under the query (sendPipeline forgot the DECLARE's text).
		b.forgetIfStale(q.SQL, err)
		return true, markLost(c.conn, err)
	}
	b.described = q.SQL
	b.formats = append(make([]int16, 0, len(eqb.ResultFormats)), eqb.ResultFormats...)
	return true, nil
}

// forgetIfStale drops the cached description of sql, the batch's query,
// when err, its DECLARE's or a FETCH's failure, may come from its being
// stale (a parameter's type changed, or the formats it gave no longer fit
// the columns): the next Batch of the query describes it again instead of
// failing the same way.
func (b *Batch) forgetIfStale(sql string, err error) {
	if sql != "" && staleDescription(err) {
		b.engine.forgetDescription(sql)
	}
}

// read hands the rows of the first FETCH, fetch, to scan under ctx, and
// returns how many there were. It ends f, whatever happens.
func (f *firstFetch) read(ctx context.Context, e *PostgresEngine, conn *pgx.Conn, fetch string, scan func(pgx.Rows) error) (n int, err error) {
	if err := ctx.Err(); err != nil {
		_ = f.drop(ctx)
		return 0, err
	}
	stop := context.AfterFunc(ctx, f.cancel)
	defer f.cancel()
	_, err = e.traced(ctx, conn, fetch, nil, func() (pgconn.CommandTag, error) {
		rr, err := nextResult(f.p)
		if err != nil {
			return pgconn.CommandTag{}, err
		}
		var tag pgconn.CommandTag
		tag, n, err = readRows(resultRows(conn, rr), scan)
		return tag, err
	})
	if closeErr := f.p.Close(); err == nil {
		err = closeErr
	}
	f.p = nil
	if !stop() && err != nil {
		err = endedWith(ctx, err)
	}
	return n, err
}

// endedWith returns err, the outcome of reading a pipeline whose own
// context was ended because ctx ended, as ctx's failure: pgconn reports
// its own context's cancellation, not the caller's deadline.
func endedWith(ctx context.Context, err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return ctx.Err()
	}
	return fmt.Errorf("%w: %w", ctx.Err(), err)
}

// drop discards the first FETCH's rows, if they wait still, and closes
// its pipeline, bounded by a cleanup context (ctx may have ended). It
// returns the FETCH's failure, if it failed.
func (f *firstFetch) drop(ctx context.Context) error {
	if f.p == nil {
		return nil
	}
	cleanup, cancel := cleanupContext(ctx)
	defer cancel()
	stop := context.AfterFunc(cleanup, f.cancel)
	defer stop()
	err := f.p.Close()
	f.p = nil
	f.cancel()
	return err
}

// fetchKnown runs the batch's FETCH on conn in the formats its query's
// description picked (no describe needed), scan reading its rows.
func (b *Batch) fetchKnown(ctx context.Context, conn *pgx.Conn, scan func(pgx.Rows) error) (n int, err error) {
	_, err = b.engine.traced(ctx, conn, b.fetch, nil, func() (pgconn.CommandTag, error) {
		rr := conn.PgConn().ExecParams(ctx, b.fetch, nil, nil, nil, b.formats)
		var tag pgconn.CommandTag
		var err error
		tag, n, err = readRows(resultRows(conn, rr), scan)
		return tag, err
	})
	return n, err
}

// fetched ends a Next that fetched n rows, or failed with err: an error,
// or fewer rows than the batch size (they have run out), closes the batch.
func (b *Batch) fetched(ctx context.Context, n int, sql string, err error) (int, error) {
	if err != nil {
		b.forgetIfStale(b.described, err)
		closeErr := b.closeLocked(ctx, err)
		return n, errors.Join(statementError(sql, err), closeErr)
	}
	if n < b.size {
		b.exhausted = true
		return n, b.closeLocked(ctx, nil)
	}
	return n, nil
}
