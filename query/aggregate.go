package query

import (
	"errors"
	"fmt"
	"slices"
)

// item is what a select list holds besides columns: an aggregate or a
// scalar subquery.
type item interface {
	renderItem(r *renderer)
	describe() string // for messages: count(*), sum("popularity"), a subquery
	defaultName() string
	aggregate() bool
}

// Agg is an aggregate whose value has Go type V: CountRows, CountOf, Sum, Avg, Min or
// Max, or a scalar subquery (Scalar). It goes in a select list (a
// projection into a struct of your own, see Into), in Having and in
// OrderBy, and compares like a column: CountRows().Gt(2).
type Agg[V any] struct {
	r colRef
}

func (a Agg[V]) ref() colRef { return a.r }

// As names the aggregate's column (AS "alias") for the projection's field;
// without As it is named after its function: count, sum, avg, min, max.
func (a Agg[V]) As(alias string) Agg[V] {
	a.r.alias = alias
	return a
}

// Distinct aggregates distinct values only: count(DISTINCT "band_1").
// CountRows has no column to distinguish and fails rendering.
func (a Agg[V]) Distinct() Agg[V] {
	if f, ok := a.r.expr.(aggExpr); ok {
		f.distinct = true
		a.r.expr = f
	}
	return a
}

// Eq is aggregate = v, for Having.
func (a Agg[V]) Eq(v V) Expr { return cmpExpr{a.r, "=", v} }

// Ne is aggregate <> v.
func (a Agg[V]) Ne(v V) Expr { return cmpExpr{a.r, "<>", v} }

// Lt is aggregate < v.
func (a Agg[V]) Lt(v V) Expr { return cmpExpr{a.r, "<", v} }

// Le is aggregate <= v.
func (a Agg[V]) Le(v V) Expr { return cmpExpr{a.r, "<=", v} }

// Gt is aggregate > v.
func (a Agg[V]) Gt(v V) Expr { return cmpExpr{a.r, ">", v} }

// Ge is aggregate >= v.
func (a Agg[V]) Ge(v V) Expr { return cmpExpr{a.r, ">=", v} }

// Asc orders by the aggregate, smallest first.
func (a Agg[V]) Asc() Order { return Order{a.r, "ASC"} }

// Desc orders by the aggregate, largest first.
func (a Agg[V]) Desc() Order { return Order{a.r, "DESC"} }

// Number is the Go types Sum and Avg accept.
type Number interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~float32 | ~float64
}

// CountRows is count(*), the number of rows (of each group).
func CountRows() Agg[int64] { return Agg[int64]{colRef{expr: aggExpr{fn: "count"}}} }

// CountOf is count(column): the rows whose column is not NULL.
func CountOf[V any](c Column[V]) Agg[int64] { return agg[int64]("count", c.r) }

// Sum is sum(column). Over no rows (or only NULLs) it is NULL: scan it
// into a pointer or sql.Null field when that can happen. PostgreSQL sums
// integer columns as bigint and bigint as numeric; the value is scanned
// into V, so an overflowing sum is a scan error, never a wrong number.
func Sum[V Number](c Column[V]) Agg[V] { return agg[V]("sum", c.r) }

// Avg is avg(column) as a float64; NULL over no rows.
func Avg[V Number](c Column[V]) Agg[float64] { return agg[float64]("avg", c.r) }

// Min is min(column); NULL over no rows.
func Min[V any](c Column[V]) Agg[V] { return agg[V]("min", c.r) }

// Max is max(column); NULL over no rows.
func Max[V any](c Column[V]) Agg[V] { return agg[V]("max", c.r) }

// agg builds fn(column), carrying the column's error.
func agg[V any](fn string, arg colRef) Agg[V] {
	if arg.err != nil {
		return Agg[V]{colRef{err: arg.err}}
	}
	if arg.c == nil || arg.expr != nil {
		return Agg[V]{colRef{err: fmt.Errorf("query: %s needs a column", fn)}}
	}
	arg.alias = ""
	return Agg[V]{colRef{expr: aggExpr{fn: fn, arg: arg}}}
}

// aggExpr is fn(*), fn(column) or fn(DISTINCT column).
type aggExpr struct {
	fn       string
	arg      colRef // zero: count(*)
	distinct bool
}

func (a aggExpr) renderItem(r *renderer) {
	if r.sc == nil || r.sc.noAggregates != "" {
		where := "here"
		if r.sc != nil {
			where = "in " + r.sc.noAggregates
		}
		r.fail(fmt.Errorf("aggregate %s %s: aggregates go in a select list, Having and OrderBy", a.describe(), where))
		return
	}
	r.write(a.fn, "(")
	switch {
	case a.arg.c == nil && a.distinct:
		r.fail(errors.New("CountRows with Distinct: count a column with CountOf(column).Distinct()"))
	case a.arg.c == nil:
		r.write("*")
	default:
		if a.distinct {
			r.write("DISTINCT ")
		}
		r.col(a.arg)
	}
	r.write(")")
}

func (a aggExpr) describe() string {
	if a.arg.c == nil {
		return a.fn + "(*)"
	}
	return a.fn + "(" + a.arg.c.quoted + ")"
}

func (a aggExpr) defaultName() string { return a.fn }

func (a aggExpr) aggregate() bool { return true }

// renderItemCmp writes an aggregate or scalar subquery compared with a
// value; NULL compares with nothing, so it fails.
func renderItemCmp(r *renderer, e cmpExpr) {
	if isNull(e.val) {
		r.fail(fmt.Errorf("%s(NULL) on %s: a comparison with NULL matches nothing", cmpNames[e.op], e.col.expr.describe()))
		return
	}
	r.value(e.col)
	r.write(" ", e.op, " ")
	r.param(e.val)
}

// grouped reports whether the SELECT aggregates: it has GroupBy or
// Having, or an aggregate in its select list or OrderBy.
func (q *selectCore) grouped() bool {
	if len(q.group) > 0 || len(q.having) > 0 {
		return true
	}
	isAgg := func(ref colRef) bool { return ref.expr != nil && ref.expr.aggregate() }
	return slices.ContainsFunc(q.cols, isAgg) || slices.ContainsFunc(q.order, func(o Order) bool { return isAgg(o.col) })
}

// checkGroups refuses, in a grouped SELECT, a selected or ordered column
// that is neither grouped nor of a table whose primary key is grouped:
// PostgreSQL would refuse it (42803).
func (q *selectCore) checkGroups(r *renderer) {
	if !q.grouped() {
		return
	}
	check := func(ref colRef) {
		if ref.expr != nil || ref.c == nil || ref.err != nil {
			return
		}
		for _, g := range q.group {
			if sameRef(g, ref) || (g.c != nil && g.c.pk && g.c.table == ref.c.table && viaAlias(g) == viaAlias(ref)) {
				return
			}
		}
		r.fail(fmt.Errorf("%s is neither grouped nor aggregated: add it to GroupBy, or group by its table's primary key", ref.describe()))
	}
	if q.cols == nil {
		check(colRef{c: q.t.cols[0]})
	}
	for _, ref := range q.cols {
		check(ref)
	}
	for _, o := range q.order {
		check(o.col)
	}
}

// sameRef reports whether two references are the same column of the same
// table in the statement.
func sameRef(a, b colRef) bool {
	return a.expr == nil && b.expr == nil && a.c == b.c && viaAlias(a) == viaAlias(b)
}

// viaAlias is the alias of the join a reference goes through; "" for the
// statement's table.
func viaAlias(ref colRef) string {
	if ref.via == nil {
		return ""
	}
	return ref.via.alias
}

// describe names a reference for messages.
func (ref colRef) describe() string {
	switch {
	case ref.expr != nil:
		return ref.expr.describe()
	case ref.c == nil:
		return "a zero column"
	case ref.via != nil:
		return fmt.Sprintf("column %q of the joined %q", ref.c.name, ref.via.alias)
	}
	return fmt.Sprintf("column %q", ref.c.name)
}
