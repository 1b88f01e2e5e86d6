package query

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/piccolo-go/piccolo"
)

// fieldPointer returns a typed pointer to a column's field, given the
// field's address, as pgx's Scan wants it.
type fieldPointer func(unsafe.Pointer) any

// ptrOf is the fieldPointer of a field of type V: a conversion, no
// reflection.
func ptrOf[V any](p unsafe.Pointer) any { return (*V)(p) }

// fieldPointers covers the common field types without reflection; other
// types go through reflect.NewAt, which only builds the pointer.
var fieldPointers = map[reflect.Type]fieldPointer{
	reflect.TypeFor[string]():          ptrOf[string],
	reflect.TypeFor[*string]():         ptrOf[*string],
	reflect.TypeFor[int]():             ptrOf[int],
	reflect.TypeFor[int16]():           ptrOf[int16],
	reflect.TypeFor[int32]():           ptrOf[int32],
	reflect.TypeFor[int64]():           ptrOf[int64],
	reflect.TypeFor[*int64]():          ptrOf[*int64],
	reflect.TypeFor[*int32]():          ptrOf[*int32],
	reflect.TypeFor[float32]():         ptrOf[float32],
	reflect.TypeFor[float64]():         ptrOf[float64],
	reflect.TypeFor[bool]():            ptrOf[bool],
	reflect.TypeFor[[]byte]():          ptrOf[[]byte],
	reflect.TypeFor[time.Time]():       ptrOf[time.Time],
	reflect.TypeFor[*time.Time]():      ptrOf[*time.Time],
	reflect.TypeFor[json.RawMessage](): ptrOf[json.RawMessage],
	reflect.TypeFor[[]string]():        ptrOf[[]string],
	reflect.TypeFor[[]int64]():         ptrOf[[]int64],
}

// pointerFor returns the fieldPointer for fields of type t.
func pointerFor(t reflect.Type) fieldPointer {
	if f, ok := fieldPointers[t]; ok {
		return f
	}
	return func(p unsafe.Pointer) any { return reflect.NewAt(t, p).Interface() }
}

// dest fills dest with pointers to cols' fields in the struct at p.
func dest(dest []any, p unsafe.Pointer, cols []*column) {
	for i, c := range cols {
		dest[i] = c.ptr(unsafe.Add(p, c.offset))
	}
}

// appendRow returns a QueryFunc callback (called once per row) that
// appends the row to *out, scanning cols (the statement's select list, in
// order) straight into the new element's fields.
func appendRow[T any](out *[]T, cols []*column) func(pgx.Rows) error {
	d := make([]any, len(cols))
	return func(rows pgx.Rows) error { return scanAppend(rows, out, d, cols) }
}

// scanAppend appends the current row of rows to *out, scanning cols
// straight into the new element's fields through d, len(cols) long.
func scanAppend[T any](rows pgx.Rows, out *[]T, d []any, cols []*column) error {
	var zero T
	*out = append(*out, zero)
	dest(d, unsafe.Pointer(&(*out)[len(*out)-1]), cols)
	return rows.Scan(d...)
}

// rowsOf is what reading a statement's rows into Ts needs, in one
// allocation: the statement (handed to the engine as a *Querystring, which
// goes into a piccolo.Query without an allocation of its own), the rows
// read (the first in first: a point read needs no more), and the scan
// destinations (in buf for up to len(buf) columns).
type rowsOf[T any] struct {
	q     piccolo.Querystring
	out   []T
	first [1]T
	cols  []*column
	d     []any
	buf   [8]any
}

// newRowsOf returns the reading of q's rows, whose columns are cols.
func newRowsOf[T any](q piccolo.Querystring, cols []*column) *rowsOf[T] {
	r := &rowsOf[T]{q: q, cols: cols}
	r.out = r.first[:0]
	if len(cols) <= len(r.buf) {
		r.d = r.buf[:len(cols)]
	} else {
		r.d = make([]any, len(cols))
	}
	return r
}

// scan is the QueryFunc callback: it appends the row to r.out.
func (r *rowsOf[T]) scan(rows pgx.Rows) error { return scanAppend(rows, &r.out, r.d, r.cols) }

// intoTargets returns a QueryFunc callback that scans the n-th row into
// targets[n], counting rows in *n.
func intoTargets[T any](targets []*T, cols []*column, n *int) func(pgx.Rows) error {
	d := make([]any, len(cols))
	return func(rows pgx.Rows) error {
		if *n == len(targets) {
			return fmt.Errorf("RETURNING gave more rows than the %d sent", len(targets))
		}
		dest(d, unsafe.Pointer(targets[*n]), cols)
		*n++
		return rows.Scan(d...)
	}
}
