package query

import (
	"context"
	"iter"

	"github.com/jackc/pgx/v5"
	"github.com/piccolo-go/piccolo"
)

// Batch streams the Select's rows through the engine's Batch (a
// server-side cursor): each iteration yields the next rows, at most
// piccolo.BatchSize of them (default 100), scanned into T with the table's
// field plan; memory stays constant whatever the size of the result.
// piccolo.OnNode runs it on that node. Without ForUpdate or ForShare it is
// a read (piccolo.Read) that ReadRouting may send to a replica.
//
// The cursor opens when the loop starts and closes when it ends, by break,
// return, panic or the end of the rows. An error is yielded once, as the
// last value. Each yielded slice is new: keep it if you like.
//
//	for bands, err := range Bands.Select().Batch(ctx, eng, piccolo.BatchSize(500)) {
//		if err != nil {
//			return err
//		}
//		process(bands)
//	}
func (s Select[T]) Batch(ctx context.Context, e piccolo.Engine, opts ...piccolo.Option) iter.Seq2[[]T, error] {
	q, cols, err := s.render()
	return batch[T](ctx, e, q, err, func(out *[]T) func(pgx.Rows) error {
		return appendRow(out, cols)
	}, s.runOptions(opts))
}

// batch streams the rows of q (or yields err) through a cursor;
// newScan returns the callback that appends one row to *out.
func batch[T any](ctx context.Context, e piccolo.Engine, q piccolo.Querystring, err error, newScan func(out *[]T) func(pgx.Rows) error, opts []piccolo.Option) iter.Seq2[[]T, error] {
	return func(yield func([]T, error) bool) {
		if err != nil {
			yield(nil, err)
			return
		}
		b, err := e.Batch(ctx, piccolo.Raw(q.SQL, q.Args...), opts...)
		if err != nil {
			yield(nil, err)
			return
		}
		// After a normal end the rows ran out and NextFunc closed the batch,
		// reporting any error; this Close matters after break, return or
		// panic, when the loop has no way left to receive an error.
		defer func() { _ = b.Close(ctx) }()
		for {
			var rows []T
			n, err := b.NextFunc(ctx, newScan(&rows))
			if err != nil {
				yield(nil, err)
				return
			}
			if n == 0 || !yield(rows, nil) {
				return
			}
		}
	}
}
