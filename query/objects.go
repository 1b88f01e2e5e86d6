package query

import (
	"context"
	"errors"
	"iter"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/piccolo-go/piccolo"
)

// ErrMultipleRows is wrapped by the error of Objects.Get when more than one
// row matches: Get is for lookups by a unique key.
var ErrMultipleRows = errors.New("more than one row matches")

// Objects reads whole rows of T: every column, so that a row read here can
// be changed and given back to Save without losing a column. Build it with
// Table.Objects; it is a value, so every method returns a modified copy.
type Objects[T any] struct {
	s Select[T]
}

// Objects starts a query of whole rows (SELECT of every column).
func (t *Table[T]) Objects() Objects[T] { return Objects[T]{s: t.Select()} }

// Where adds conditions, joined with AND to any given before.
func (o Objects[T]) Where(exprs ...Expr) Objects[T] { return Objects[T]{o.s.Where(exprs...)} }

// OrderBy adds ORDER BY terms after any given before.
func (o Objects[T]) OrderBy(order ...Order) Objects[T] { return Objects[T]{o.s.OrderBy(order...)} }

// Limit returns at most n rows.
func (o Objects[T]) Limit(n int) Objects[T] { return Objects[T]{o.s.Limit(n)} }

// Offset skips the first n rows.
func (o Objects[T]) Offset(n int) Objects[T] { return Objects[T]{o.s.Offset(n)} }

// ForUpdate locks the rows until the transaction ends, for a read followed
// by Save.
func (o Objects[T]) ForUpdate() Objects[T] { return Objects[T]{o.s.ForUpdate()} }

// Select returns the Select the Objects query is, for the options Objects
// does not repeat (ForShare, SkipLocked, NoWait).
func (o Objects[T]) Select() Select[T] { return o.s }

// Querystrings implements piccolo.Query.
func (o Objects[T]) Querystrings() ([]piccolo.Querystring, error) { return o.s.Querystrings() }

// All runs the query and returns the rows; see Select.All.
func (o Objects[T]) All(ctx context.Context, e piccolo.Engine, opts ...piccolo.Option) ([]T, error) {
	return o.s.All(ctx, e, opts...)
}

// First returns the first row; see Select.First.
func (o Objects[T]) First(ctx context.Context, e piccolo.Engine, opts ...piccolo.Option) (T, error) {
	return o.s.First(ctx, e, opts...)
}

// Batch streams the rows; see Select.Batch.
func (o Objects[T]) Batch(ctx context.Context, e piccolo.Engine, opts ...piccolo.Option) iter.Seq2[[]T, error] {
	return o.s.Batch(ctx, e, opts...)
}

// Get returns the one row that matches where (and the conditions given
// before). With no row the error satisfies errors.Is(err, pgx.ErrNoRows)
// and errors.Is(err, sql.ErrNoRows); with more than one, ErrMultipleRows.
// It reads at most two rows to tell.
func (o Objects[T]) Get(ctx context.Context, e piccolo.Engine, where ...Expr) (T, error) {
	var zero T
	rows, err := o.s.Where(where...).Limit(2).All(ctx, e)
	switch {
	case err != nil:
		return zero, err
	case len(rows) == 0:
		return zero, &opError{op: "Get from", table: o.s.t.def.name, err: pgx.ErrNoRows}
	case len(rows) > 1:
		return zero, &opError{op: "Get from", table: o.s.t.def.name, err: ErrMultipleRows}
	}
	return rows[0], nil
}

// Save writes obj: an INSERT when its primary key is zero (0, "", the
// zero UUID, ...), else an INSERT ... ON CONFLICT (primary key) DO UPDATE
// of every other column, which updates the row or puts it back if it was
// deleted. A zero key is sent as DEFAULT when the column has one (an
// identity or serial column, or default= such as gen_random_uuid()), and
// the key the server chose is written back, as Insert does; without a
// DEFAULT, a zero key fails to render with ErrZeroKey before anything is
// sent. obj is read when the query renders.
//
// A new row is never an upsert: if the key's sequence lags behind ids
// inserted by hand, the INSERT fails with a unique violation rather than
// overwrite the row that holds the id. Save needs a primary key.
func (t *Table[T]) Save(obj *T) Save[T] { return Save[T]{t: t, obj: obj} }

// Save is the query returned by Table.Save. It is a piccolo.Runner, so
// that an Atomic writes a new id back into the object too.
type Save[T any] struct {
	t   *Table[T]
	obj *T
}

// insert is the statement Save stands for, decided on obj's current key.
func (s Save[T]) insert() Insert[T] {
	ins := s.t.Insert(s.obj)
	pk := s.t.def.pk
	switch {
	case pk == nil:
		ins.target = []colRef{{err: errors.New("the table has no primary key")}}
		ins.conflict = "UPDATE"
	case s.obj != nil && !pk.value(unsafe.Pointer(s.obj)).IsZero():
		ins.conflict, ins.target = "UPDATE", []colRef{{c: pk}}
	}
	return ins
}

// Querystrings implements piccolo.Query.
func (s Save[T]) Querystrings() ([]piccolo.Querystring, error) {
	qs, err := s.insert().Querystrings()
	return qs, relabel(err, "Save into")
}

// Run saves the object and writes the RETURNING columns (a new identity
// id) back into it.
func (s Save[T]) Run(ctx context.Context, e piccolo.Engine) error {
	return relabel(s.insert().Run(ctx, e), "Save into")
}

// Remove deletes obj's row, found by its primary key (read when the query
// renders). Run returns 0 if the row was already gone. It fails to render
// for a table without a primary key, and with ErrZeroKey for a zero key:
// an object that was never saved has no row.
func (t *Table[T]) Remove(obj *T) Delete[T] {
	d := t.Delete().Where(keyExpr[T]{c: t.def.pk, row: obj})
	d.op = "Remove from"
	return d
}
