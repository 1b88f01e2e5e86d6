package query

import (
	"errors"
	"fmt"
	"reflect"
	"unsafe"
)

// Col is any typed column, for the lists that do not care about the
// column's Go type: Select, Returning, CreateIndex, OnConflict targets.
// Only Column implements it.
type Col interface {
	ref() colRef
}

// colRef points at a column, or carries the error of a failed C. In a
// Select it may also be a column of a joined table (via), an aggregate or
// a scalar subquery (expr), and carry the name a projection gives it.
type colRef struct {
	c     *column
	err   error
	via   *joinNode // the join c is reached through; nil: the statement's table
	expr  item      // an aggregate or scalar subquery instead of a column
	alias string    // AS alias in a select list
}

// Column is a column of a table whose Go field has type V. Its methods
// build where expressions, orderings and assignments whose values must be
// of type V, so a mistyped value does not compile.
type Column[V any] struct {
	r colRef
}

// errZeroColumn is the error of a Column that was never declared with C.
var errZeroColumn = errors.New("query: zero Column: declare columns with C")

// C declares the column of t whose field field returns: field is called
// once, on a zero T, and the field is found by its address, so the field
// name and its Go type are checked by the compiler:
//
//	var BandName = query.C(Bands, func(b *Band) *string { return &b.Name })
//
// C does not panic. If field does not return one of t's column fields (a
// field tagged "-", say) the Column carries the error: Err reports it and
// every query that uses the Column fails to render with it.
func C[T, V any](t *Table[T], field func(*T) *V) Column[V] {
	c, err := lookupColumn(t, field)
	if err != nil {
		return Column[V]{r: colRef{err: err}}
	}
	return Column[V]{r: colRef{c: c}}
}

// lookupColumn finds the column whose field the accessor returns.
func lookupColumn[T, V any](t *Table[T], field func(*T) *V) (c *column, err error) {
	if t == nil || field == nil {
		return nil, errors.New("query: C: nil table or accessor")
	}
	defer func() {
		if p := recover(); p != nil {
			c, err = nil, fmt.Errorf("query: C(%s): the accessor panicked: %v", t.def.name, p)
		}
	}()
	base := new(T)
	fp := field(base)
	if fp == nil {
		return nil, fmt.Errorf("query: C(%s): the accessor returned nil", t.def.name)
	}
	start, addr := uintptr(unsafe.Pointer(base)), uintptr(unsafe.Pointer(fp))
	want := reflect.TypeFor[V]()
	if addr >= start && addr-start < unsafe.Sizeof(*base) {
		for _, col := range t.def.cols {
			if col.offset == addr-start && col.goType == want {
				return col, nil
			}
		}
	}
	return nil, fmt.Errorf("query: C(%s): the accessor does not return a column's field (a %s field that is skipped, unexported or not in %s)",
		t.def.name, want, t.def.goType)
}

// As names the column alias in a select list (SELECT ... AS "alias"), for
// a projection into a struct whose field has that name (see Into).
func (c Column[V]) As(alias string) Column[V] {
	c.r.alias = alias
	return c
}

// Name returns the column's name, unquoted; "" if C failed.
func (c Column[V]) Name() string {
	if c.r.c == nil {
		return ""
	}
	return c.r.c.name
}

// Err returns the error of the C call that declared c, if any.
func (c Column[V]) Err() error {
	if c.r.c == nil && c.r.err == nil {
		return errZeroColumn
	}
	return c.r.err
}

func (c Column[V]) ref() colRef { return c.r }

// Eq is column = v. A v sent as NULL (nil, a nil pointer or slice, an
// invalid sql.Null or pgtype value) renders column IS NULL, since = NULL
// matches no row; on a NOT NULL column it fails rendering.
func (c Column[V]) Eq(v V) Expr { return cmpExpr{c.r, "=", v} }

// Ne is column <> v. A v sent as NULL renders column IS NOT NULL; on a
// NOT NULL column it fails rendering.
func (c Column[V]) Ne(v V) Expr { return cmpExpr{c.r, "<>", v} }

// EqCol is column = other, two columns compared: a join condition for
// JoinOn, or a correlated subquery's link to the query around it.
func (c Column[V]) EqCol(other Column[V]) Expr { return cmpExpr{c.r, "=", other.r} }

// Lt is column < v. A NULL v fails rendering: it would match no row.
func (c Column[V]) Lt(v V) Expr { return cmpExpr{c.r, "<", v} }

// Le is column <= v. A NULL v fails rendering.
func (c Column[V]) Le(v V) Expr { return cmpExpr{c.r, "<=", v} }

// Gt is column > v. A NULL v fails rendering.
func (c Column[V]) Gt(v V) Expr { return cmpExpr{c.r, ">", v} }

// Ge is column >= v. A NULL v fails rendering.
func (c Column[V]) Ge(v V) Expr { return cmpExpr{c.r, ">=", v} }

// In is column = ANY($n), with vs bound as one array parameter: the SQL
// text does not change with the number of values (one cached statement)
// and a long list does not eat into the 65535-parameter limit. It matches
// the rows Or(Eq(v) for each v) matches: no values match no row, and a
// NULL among vs adds OR column IS NULL (refused on a NOT NULL column).
func (c Column[V]) In(vs ...V) Expr { return newIn(c.r, false, vs) }

// NotIn is column <> ALL($n). It matches every row whose column is not
// NULL and differs from each of vs: no values render column IS NOT NULL
// (<> ALL of an empty array would match NULL too), and a NULL among vs
// adds nothing, since a NULL column never matches (refused on a NOT NULL
// column).
func (c Column[V]) NotIn(vs ...V) Expr { return newIn(c.r, true, vs) }

// Between is column BETWEEN lo AND hi, both ends included. A NULL bound
// fails rendering: it would match no row.
func (c Column[V]) Between(lo, hi V) Expr { return betweenExpr{c.r, lo, hi} }

// IsNull is column IS NULL, as Eq(nil) is.
func (c Column[V]) IsNull() Expr { return nullExpr{c.r, "IS NULL"} }

// IsNotNull is column IS NOT NULL, as Ne(nil) is.
func (c Column[V]) IsNotNull() Expr { return nullExpr{c.r, "IS NOT NULL"} }

// Like is column LIKE pattern (% and _ are wildcards, \ escapes them). It
// applies to text columns; on others the query fails to render.
func (c Column[V]) Like(pattern string) Expr { return cmpExpr{c.r, "LIKE", pattern} }

// ILike is Like ignoring case.
func (c Column[V]) ILike(pattern string) Expr { return cmpExpr{c.r, "ILIKE", pattern} }

// Asc orders by the column, smallest first.
func (c Column[V]) Asc() Order { return Order{c.r, "ASC"} }

// Desc orders by the column, largest first.
func (c Column[V]) Desc() Order { return Order{c.r, "DESC"} }

// Set is the assignment column = v, for Update.
func (c Column[V]) Set(v V) Assignment { return Assignment{c.r, v} }

// SetSQL is the assignment column = (fragment), for updates a value cannot
// say, such as popularity = popularity + 1:
//
//	Popularity.SetSQL(`"popularity" + $1`, 1)
//
// The fragment's $1..$n bind to args and are renumbered like SQL's. The
// fragment is SQL: never build it from user input.
func (c Column[V]) SetSQL(fragment string, args ...any) Assignment {
	return Assignment{c.r, sqlExpr{fragment, append([]any{}, args...)}}
}

// Order is one ORDER BY term, made by Column's Asc and Desc.
type Order struct {
	col colRef
	dir string
}

// Assignment is one SET term of an Update, made by Column.Set or SetSQL.
type Assignment struct {
	col colRef
	val any
}
