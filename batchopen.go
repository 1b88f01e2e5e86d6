package piccolo

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A Batch outside a transaction opens in one round trip: BEGIN, DECLARE
// and the first FETCH travel in one pipeline, every later FETCH goes
// without a describe (its columns' formats are those of the query's
// description), and the rows end with one COMMIT, which closes the cursor.
// The query is described (from the engine's cache, or alone, before BEGIN)
// and its arguments encoded before anything is sent; a query that is not
// ready opens the usual way. The first batch is read off the connection
// as the batch opens, under Batch's context, and kept (bufferedRows) until
// the first Next, which hands it over without I/O; should the query fail
// while that FETCH runs, the first Next reports it, as it would had it sent
// the FETCH itself. Keeping a batch costs memory that NextFunc, which
// streams each row to its callback, would not spend, so the first FETCH
// rides only for batches of at most maxKeptRows rows: a larger one costs
// far more than the round trip it would save.

// maxKeptRows is the largest batch whose first FETCH rides with DECLARE.
const maxKeptRows = 1000

// openInOne declares b's cursor over q, with declare, in one pipeline
// with its own transaction's BEGIN and the first FETCH, whose rows it keeps
// in b.first. handled false: nothing was sent (b is
// in the caller's transaction, q cannot ride, see canRide, or failed to
// describe or encode), and the caller opens it the usual way, which
// reports any failure. Otherwise err is the failure of BEGIN or DECLARE.
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
	// DECLARE takes the query's parameters.
	ps = append(ps, &piped{sql: declare, args: q.Args, sd: sd, params: eqb.ParamValues, formats: eqb.ParamFormats})
	// FETCH returns the query's columns, in the formats its description
	// picks.
	var first *bufferedRows
	var fetch *piped
	if b.size <= maxKeptRows {
		first = &bufferedRows{conn: conn}
		fetch = &piped{sql: b.fetch, results: eqb.ResultFormats, scan: first.keep}
		ps = append(ps, fetch)
	}
	ran, _, err := c.sendFirst(ctx, ps, withBegin)
	k := len(pending)
	if ran < k {
		return true, markLost(c.conn, c.delivered(pending, withBegin, err))
	}
	_ = c.delivered(pending, withBegin, nil)
	if first != nil && ran == k+1 && fromServer(err) {
		first.err, err = err, nil // the first Next's to report
	}
	if err != nil {
		return true, markLost(c.conn, err)
	}
	if first != nil {
		first.tag = fetch.tag
	}
	b.formats = append(make([]int16, 0, len(eqb.ResultFormats)), eqb.ResultFormats...)
	b.first = first
	return true, nil
}

// fetchKnown runs the batch's FETCH on conn in the formats its query's
// description picked (no describe needed), scan reading its rows.
func (b *Batch) fetchKnown(ctx context.Context, conn *pgx.Conn, scan func(pgx.Rows) error) (n int, err error) {
	_, err = b.engine.traced(ctx, conn, b.fetch, nil, func() (pgconn.CommandTag, error) {
		rr := conn.PgConn().ExecParams(ctx, b.fetch, nil, nil, nil, b.formats)
		var tag pgconn.CommandTag
		var err error
		tag, n, err = readRows(pgx.RowsFromResultReader(conn.TypeMap(), rr), scan)
		return tag, err
	})
	return n, err
}

// fetched ends a Next that fetched n rows, or failed with err: an error,
// or fewer rows than the batch size (they have run out), closes the batch.
func (b *Batch) fetched(ctx context.Context, n int, sql string, err error) (int, error) {
	if err != nil {
		closeErr := b.closeLocked(ctx, err)
		return n, errors.Join(statementError(sql, err), closeErr)
	}
	if n < b.size {
		b.exhausted = true
		return n, b.closeLocked(ctx, nil)
	}
	return n, nil
}
