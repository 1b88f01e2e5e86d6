package query

import (
	"context"
	"fmt"
	"iter"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
)

// Raw is a statement written by hand whose rows scan into T: each result
// column fills the field of the table's column of the same name (Piccolo's
// Table.raw). Build it with Table.Raw. A result column that is not one of
// the table's columns is an error; columns not returned leave their fields
// zero.
//
// Raw cannot tell a read from a write, so it is not marked piccolo.Read;
// pass piccolo.Read() to let ReadRouting send a read to a replica.
type Raw[T any] struct {
	t  *Table[T]
	qs piccolo.Querystring
}

// Raw starts a hand-written statement with $1..$n placeholders bound to
// args, whose rows scan into T by column name:
//
//	Bands.Raw(`SELECT * FROM band WHERE popularity > $1`, 100)
func (t *Table[T]) Raw(sql string, args ...any) Raw[T] {
	return Raw[T]{t: t, qs: piccolo.Querystring{SQL: sql, Args: args}}
}

// Querystrings implements piccolo.Query.
func (r Raw[T]) Querystrings() ([]piccolo.Querystring, error) {
	return piccolo.Raw(r.qs.SQL, r.qs.Args...).Querystrings()
}

// All runs the statement and returns its rows.
func (r Raw[T]) All(ctx context.Context, e piccolo.Engine, opts ...piccolo.Option) ([]T, error) {
	if _, err := r.Querystrings(); err != nil {
		return nil, err
	}
	var out []T
	if err := e.QueryFunc(ctx, r.qs, appendByName(r.t.def, &out), opts...); err != nil {
		return nil, err
	}
	return out, nil
}

// Batch streams the statement's rows, which must come from one SELECT or
// VALUES; see Select.Batch.
func (r Raw[T]) Batch(ctx context.Context, e piccolo.Engine, opts ...piccolo.Option) iter.Seq2[[]T, error] {
	_, err := r.Querystrings()
	return batch[T](ctx, e, r.qs, err, func(out *[]T) func(pgx.Rows) error {
		return appendByName(r.t.def, out)
	}, opts)
}

// appendByName returns a QueryFunc callback that appends each row to *out,
// matching the result's columns to d's by name on the first row.
func appendByName[T any](d *tableDef, out *[]T) func(pgx.Rows) error {
	var cols []*column
	var dst []any
	return func(rows pgx.Rows) error {
		if cols == nil {
			var err error
			if cols, err = d.columnsOf(rows.FieldDescriptions()); err != nil {
				return err
			}
			dst = make([]any, len(cols))
		}
		var zero T
		*out = append(*out, zero)
		dest(dst, unsafe.Pointer(&(*out)[len(*out)-1]), cols)
		return rows.Scan(dst...)
	}
}

// columnsOf maps a result's columns to d's columns by name.
func (d *tableDef) columnsOf(fields []pgconn.FieldDescription) ([]*column, error) {
	cols := make([]*column, len(fields))
	for i, f := range fields {
		for _, c := range d.cols {
			if c.name == f.Name {
				cols[i] = c
				break
			}
		}
		if cols[i] == nil {
			return nil, fmt.Errorf("result column %q is not a column of table %q", f.Name, d.name)
		}
	}
	return cols, nil
}
