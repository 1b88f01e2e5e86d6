package query

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/piccolo-go/piccolo"
)

// All runs the Select on e and returns every row, scanned into T with the
// table's field plan (no per-row reflection). opts (piccolo.OnNode) choose
// where it runs; inside a transaction carried by ctx it runs there. A
// Select without ForUpdate or ForShare is a read (piccolo.Read): with the
// engine's ReadRouting it may run on a replica.
func (s Select[T]) All(ctx context.Context, e piccolo.Engine, opts ...piccolo.Option) ([]T, error) {
	q, cols, err := s.render()
	if err != nil {
		return nil, err
	}
	return queryAll[T](ctx, e, q, cols, s.runOptions(opts))
}

// runOptions adds piccolo.Read to opts unless the Select locks rows, which
// only the primary can do.
func (s Select[T]) runOptions(opts []piccolo.Option) []piccolo.Option { return s.q.runOptions(opts) }

// runOptions adds piccolo.Read to opts unless the SELECT locks rows.
func (q *selectCore) runOptions(opts []piccolo.Option) []piccolo.Option {
	if q.lock != "" {
		return opts
	}
	return readOptions(opts)
}

// readOptions marks a statement as a read that ReadRouting may send to a
// replica; the caller's options come after, so OnNode still decides.
func readOptions(opts []piccolo.Option) []piccolo.Option {
	if len(opts) == 0 {
		return readOnly
	}
	return append([]piccolo.Option{piccolo.Read()}, opts...)
}

// readOnly is readOptions' result without other options, shared so that a
// point read allocates no option slice; nothing appends to it or changes it.
var readOnly = []piccolo.Option{piccolo.Read()}

// First runs the Select with LIMIT 1 and returns its row. With no row it
// returns an error for which errors.Is(err, pgx.ErrNoRows) and
// errors.Is(err, sql.ErrNoRows) hold.
func (s Select[T]) First(ctx context.Context, e piccolo.Engine, opts ...piccolo.Option) (T, error) {
	rows, err := s.Limit(1).All(ctx, e, opts...)
	return firstRow(rows, err, s.t.def.name)
}

// firstRow returns the first of rows read from table, or the error, or
// one wrapping pgx.ErrNoRows when there are none.
func firstRow[T any](rows []T, err error, table string) (T, error) {
	if err != nil || len(rows) == 0 {
		var zero T
		if err == nil {
			err = &opError{op: "First from", table: table, err: pgx.ErrNoRows}
		}
		return zero, err
	}
	return rows[0], nil
}

// queryAll runs q and scans its rows, whose columns are cols, into Ts.
func queryAll[T any](ctx context.Context, e piccolo.Engine, q piccolo.Querystring, cols []*column, opts []piccolo.Option) ([]T, error) {
	r := newRowsOf[T](q, cols)
	if err := e.QueryFunc(ctx, &r.q, r.scan, opts...); err != nil || len(r.out) == 0 {
		return nil, err // no rows: nil, as before
	}
	return r.out, nil
}

// queryOne runs a single-statement query whose one row is one value.
func queryOne[V any](ctx context.Context, e piccolo.Engine, q piccolo.Query, opts []piccolo.Option) (V, error) {
	var v V
	qs, err := q.Querystrings()
	if err != nil {
		return v, err
	}
	n := 0
	err = e.QueryFunc(ctx, qs[0], func(rows pgx.Rows) error {
		n++
		return rows.Scan(&v)
	}, opts...)
	if err == nil && n != 1 {
		err = fmt.Errorf("query: %d rows where one was expected", n)
	}
	return v, err
}

// Run runs the count and returns it. It is a read (piccolo.Read).
func (c Count) Run(ctx context.Context, e piccolo.Engine, opts ...piccolo.Option) (int64, error) {
	return queryOne[int64](ctx, e, c, readOptions(opts))
}

// Run reports whether any row matches. It is a read (piccolo.Read).
func (x Exists) Run(ctx context.Context, e piccolo.Engine, opts ...piccolo.Option) (bool, error) {
	return queryOne[bool](ctx, e, x, readOptions(opts))
}

// Run inserts the rows and writes the RETURNING columns (by default the
// identity primary key and the omitted columns) back into them, relying on
// PostgreSQL returning the rows of INSERT ... VALUES in order. Several
// chunks run in one transaction (joining ctx's, if any): all rows or none.
// If that transaction rolls back after a chunk, ids already written into
// the rows are stale.
//
// Run makes Insert a piccolo.Runner: in an Atomic, ids are written back
// too.
//
// With nothing to write back (Returning() with no columns), no ON CONFLICT
// and at least 1,000 rows, Run loads the rows with COPY, about 2.4 times
// faster than INSERTs (BenchmarkInsert10k), in the context's transaction
// if there is one.
func (i Insert[T]) Run(ctx context.Context, e piccolo.Engine) error {
	p, err := i.plan()
	if err != nil {
		return err
	}
	if cols, ok := i.copyColumns(p); ok {
		return i.copyRows(ctx, e, cols)
	}
	run := func(ctx context.Context) error {
		for _, rows := range p.chunks {
			q, err := i.renderChunk(p, rows)
			if err != nil {
				return err
			}
			if len(p.returning) == 0 {
				_, err = e.Exec(ctx, q)
			} else {
				n := 0
				err = e.QueryFunc(ctx, q, intoTargets(rows, p.returning, &n))
				if err == nil {
					err = i.checkReturned(n, len(rows))
				}
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	if len(p.chunks) == 1 {
		return run(ctx)
	}
	return e.Transaction(ctx, run)
}

// checkReturned checks that RETURNING gave one row for each row sent.
func (i Insert[T]) checkReturned(got, sent int) error {
	if got == sent {
		return nil
	}
	return &opError{op: "Insert into", table: i.t.def.name,
		err: fmt.Errorf("RETURNING gave %d rows for the %d sent", got, sent)}
}

// Pipeline implements piccolo.Pipeliner: in an Atomic, Inserts go in one
// pipeline with the queries around them, their RETURNING rows written
// back from the pipeline's results; an Insert with a value that points
// into rows an earlier Insert writes back (a *int64 field holding
// &manager.ID) is rendered and sent once that one ran. An Insert that
// Run loads with COPY runs alone.
func (i Insert[T]) Pipeline() (piccolo.Pipelined, bool, error) {
	p, err := i.plan()
	if err != nil {
		return piccolo.Pipelined{}, false, err
	}
	if _, ok := i.copyColumns(p); ok {
		return piccolo.Pipelined{}, false, nil
	}
	pl := piccolo.Pipelined{Statements: make([]piccolo.Querystring, len(p.chunks))}
	for k, rows := range p.chunks {
		if pl.Statements[k], err = i.renderChunk(p, rows); err != nil {
			return piccolo.Pipelined{}, false, err
		}
	}
	if len(p.returning) == 0 {
		return pl, true, nil
	}
	seen := make([]int, len(p.chunks))
	pl.Scans = make([]func(pgx.Rows) error, len(p.chunks))
	for k, rows := range p.chunks {
		pl.Scans[k] = intoTargets(rows, p.returning, &seen[k])
	}
	pl.Done = func() error {
		for k, rows := range p.chunks {
			if err := i.checkReturned(seen[k], len(rows)); err != nil {
				return err
			}
		}
		return nil
	}
	pl.Writes = make([]any, len(i.rows))
	for k, row := range i.rows {
		pl.Writes[k] = row
	}
	return pl, true, nil
}

// Run runs the Update and returns the number of rows it changed; any
// RETURNING rows are discarded (RunReturning scans them).
func (u Update[T]) Run(ctx context.Context, e piccolo.Engine, opts ...piccolo.Option) (int64, error) {
	return execOne(ctx, e, u, opts)
}

// RunReturning runs the Update and returns the RETURNING rows, scanned
// into T (fields of columns not returned stay zero).
func (u Update[T]) RunReturning(ctx context.Context, e piccolo.Engine, opts ...piccolo.Option) ([]T, error) {
	return returningAll[T](ctx, e, u, u.t.def, u.rows.returning, opts)
}

// Run runs the Delete and returns the number of rows it removed.
func (d Delete[T]) Run(ctx context.Context, e piccolo.Engine, opts ...piccolo.Option) (int64, error) {
	return execOne(ctx, e, d, opts)
}

// RunReturning runs the Delete and returns the RETURNING rows, scanned
// into T.
func (d Delete[T]) RunReturning(ctx context.Context, e piccolo.Engine, opts ...piccolo.Option) ([]T, error) {
	return returningAll[T](ctx, e, d, d.t.def, d.rows.returning, opts)
}

// execOne runs a single-statement query and returns its rows affected.
func execOne(ctx context.Context, e piccolo.Engine, q piccolo.Query, opts []piccolo.Option) (int64, error) {
	qs, err := q.Querystrings()
	if err != nil {
		return 0, err
	}
	tag, err := e.Exec(ctx, qs[0], opts...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// returningAll runs q and scans its RETURNING rows.
func returningAll[T any](ctx context.Context, e piccolo.Engine, q piccolo.Query, d *tableDef, ret []colRef, opts []piccolo.Option) ([]T, error) {
	qs, err := q.Querystrings()
	if err != nil {
		return nil, err
	}
	if len(ret) == 0 {
		return nil, &opError{op: "RunReturning on", table: d.name, err: errors.New("no Returning columns")}
	}
	cols := make([]*column, len(ret))
	for i, r := range ret {
		cols[i] = r.c // checked by Querystrings
	}
	return queryAll[T](ctx, e, qs[0], cols, opts)
}

// Exec runs every statement of q in order, in one transaction when there
// are several (joining ctx's, if any), discarding any rows. A
// piccolo.Runner runs through its Run. It is how DDL runs without an
// Atomic:
//
//	err := query.Exec(ctx, eng, Bands.Create().IfNotExists())
func Exec(ctx context.Context, e piccolo.Engine, q piccolo.Query) error {
	if q == nil || e == nil {
		return errors.New("query: Exec: nil query or engine")
	}
	if r, ok := q.(piccolo.Runner); ok {
		return r.Run(ctx, e)
	}
	qs, err := q.Querystrings()
	if err != nil {
		return err
	}
	run := func(ctx context.Context) error {
		for _, s := range qs {
			if _, err := e.Exec(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}
	if len(qs) == 1 {
		return run(ctx)
	}
	return e.Transaction(ctx, run)
}

// Compile-time checks of the builders' contracts.
var (
	_ piccolo.Query     = Select[struct{}]{}
	_ piccolo.Pipeliner = Insert[struct{}]{}
	_ piccolo.Query     = Update[struct{}]{}
	_ piccolo.Query     = Delete[struct{}]{}
	_ piccolo.Query     = Count{}
	_ piccolo.Query     = Exists{}
	_ piccolo.Query     = Create{}
	_ piccolo.Query     = DropTable{}
	_ piccolo.Query     = CreateIndex{}
	_ piccolo.Query     = DropIndex{}
	_ piccolo.Query     = AddColumn{}
	_ piccolo.Query     = DropColumn{}
	_ piccolo.Query     = RenameColumn{}
)
