package query

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unsafe"
)

// ErrZeroKey is wrapped by the error of a query that needs an object's
// primary key and finds it zero (0, "", the zero UUID, ...) where the
// server cannot stand in for it: an Insert or Save of a row whose key
// column has no DEFAULT, and a Remove of an object that was never saved.
// Nothing has been sent when it is returned. Set the key, or declare the
// column's default (default=gen_random_uuid() on a uuid key).
var ErrZeroKey = errors.New("zero primary key")

// isSerial reports whether a type= names one of PostgreSQL's serial
// pseudo-types, which bring a DEFAULT of their own.
func isSerial(sqlType string) bool {
	switch strings.ToLower(sqlType) {
	case "smallserial", "serial", "bigserial", "serial2", "serial4", "serial8":
		return true
	}
	return false
}

// checkKeys refuses rows whose primary key, among the inserted columns
// cols, is zero although the column has no DEFAULT to generate it: sent as
// it is, every such row would have the same key.
func checkKeys[T any](r *renderer, pk *column, cols []*column, rows []*T) {
	if pk == nil || pk.autoKey || !slices.Contains(cols, pk) {
		return
	}
	for n, row := range rows {
		if row != nil && pk.value(unsafe.Pointer(row)).IsZero() {
			r.fail(fmt.Errorf("row %d: %w: field %s is zero and column %q has no DEFAULT to generate it; set the key, or declare the column's default (default=gen_random_uuid() for a uuid)",
				n, ErrZeroKey, pk.field, pk.name))
			return
		}
	}
}

// keyExpr is column = $n with the value read from row's field when it
// renders: an object's primary key (Remove) or a GetOrCreate key column.
type keyExpr[T any] struct {
	c   *column
	row *T
}

func (k keyExpr[T]) render(r *renderer, _ bool) {
	if k.c == nil {
		r.fail(errors.New("the table has no primary key"))
		return
	}
	if k.row == nil {
		r.fail(errors.New("nil object"))
		return
	}
	v := k.c.value(unsafe.Pointer(k.row))
	switch {
	case k.c.pk && v.IsZero():
		r.fail(fmt.Errorf("%w: the object's %s is zero: it was never saved, so it has no row", ErrZeroKey, k.c.field))
		return
	case isNull(v.Interface()):
		r.fail(fmt.Errorf("the object's %s is NULL, which equals no key: set it", k.c.field))
		return
	}
	r.write(k.c.quoted, " = ")
	r.param(v.Interface())
}
