package query

import (
	"errors"
	"fmt"
)

// Subquery is a SELECT used inside another query: a Select or a
// Projection. Its values are bound with the enclosing statement's, and its
// conditions may use the enclosing query's columns (a correlated subquery,
// which EqCol links). A column of a table that the subquery selects from
// means the subquery's row, even when the enclosing query selects from the
// same table: a subquery cannot yet correlate with a query on its own table.
type Subquery interface {
	subquery() *selectCore
}

func (s Select[T]) subquery() *selectCore     { return &s.q }
func (p Projection[R]) subquery() *selectCore { return &p.q }

// InSubquery is column IN (subquery): the subquery must select exactly one
// column, aggregate or subquery.
//
//	BandID.InSubquery(Concerts.Select(ConcertBand1).Where(ConcertVenue.Eq(venueID)))
func (c Column[V]) InSubquery(sub Subquery) Expr { return subInExpr{col: c.r, sub: sub} }

// NotInSubquery is column NOT IN (subquery). As in SQL, a NULL among the
// subquery's values makes it match no row: select a NOT NULL column, or
// filter NULLs out in the subquery.
func (c Column[V]) NotInSubquery(sub Subquery) Expr { return subInExpr{col: c.r, sub: sub, not: true} }

// ExistsSubquery is EXISTS (subquery): true when the subquery returns a
// row. Link it to the enclosing query with EqCol for a correlated
// subquery:
//
//	query.ExistsSubquery(Concerts.Select(ConcertID).Where(ConcertBand1.EqCol(BandID)))
func ExistsSubquery(sub Subquery) Expr { return existsExpr{sub: sub} }

// NotExistsSubquery is NOT EXISTS (subquery).
func NotExistsSubquery(sub Subquery) Expr { return existsExpr{sub: sub, not: true} }

// Scalar is a scalar subquery for a select list (give it a name with As)
// or a comparison: (SELECT one value), NULL when it returns no row, an
// error from the server when it returns several. V is the Go type of its
// one item:
//
//	query.Scalar[int64](Concerts.Select(query.CountRows()).Where(ConcertBand1.EqCol(BandID))).As("concerts")
func Scalar[V any](sub Subquery) Agg[V] {
	if sub == nil {
		return Agg[V]{colRef{err: errors.New("query: Scalar: nil subquery")}}
	}
	return Agg[V]{colRef{expr: scalarExpr{sub: sub}}}
}

// subInExpr is column [NOT] IN (subquery).
type subInExpr struct {
	col colRef
	sub Subquery
	not bool
}

func (e subInExpr) render(r *renderer, _ bool) {
	r.value(e.col)
	if e.not {
		r.write(" NOT")
	}
	r.write(" IN ")
	writeSubquery(r, e.sub, true)
}

// existsExpr is [NOT] EXISTS (subquery).
type existsExpr struct {
	sub Subquery
	not bool
}

func (e existsExpr) render(r *renderer, _ bool) {
	if e.not {
		r.write("NOT ")
	}
	r.write("EXISTS ")
	writeSubquery(r, e.sub, false)
}

// scalarExpr is (subquery) as a value.
type scalarExpr struct{ sub Subquery }

func (e scalarExpr) renderItem(r *renderer) { writeSubquery(r, e.sub, true) }
func (e scalarExpr) describe() string       { return "a scalar subquery" }
func (e scalarExpr) defaultName() string    { return "" }
func (e scalarExpr) aggregate() bool        { return false }

// writeSubquery writes (SELECT ...) with its own scope inside r's, its
// values bound among r's. A first pass on a scratch renderer finds its
// joins; the subquery's columns are always qualified, so that they cannot
// be mistaken for the enclosing query's. one asks for exactly one item.
func writeSubquery(r *renderer, sub Subquery, one bool) {
	if sub == nil {
		r.fail(errors.New("nil subquery"))
		return
	}
	q := sub.subquery()
	if one && ((q.cols == nil && len(q.t.cols) != 1) || (q.cols != nil && len(q.cols) != 1)) {
		r.fail(fmt.Errorf("a subquery compared with a value must select one item; this one selects from %q %s", q.t.name, itemCount(q)))
		return
	}
	saved, outer := r.sc, r.sc
	if outer == nil {
		// An Update, Delete, Count or Exists: its table is in reach of a
		// correlated subquery, but nothing can join it.
		outer = &scope{base: r.table, noJoins: true, noAggregates: "Where"}
	}
	scratch := &renderer{table: q.t, sc: &scope{base: q.t, explicit: q.joins, outer: outer, qualify: true}}
	q.write(scratch)
	if scratch.err != nil {
		r.fail(fmt.Errorf("subquery on %q: %w", q.t.name, scratch.err))
		return
	}
	r.sc = &scope{base: q.t, explicit: q.joins, joins: scratch.sc.joins, outer: outer, qualify: true}
	r.write("(")
	q.write(r)
	r.write(")")
	r.sc = saved
}

// itemCount says how many items a SELECT has, for messages.
func itemCount(q *selectCore) string {
	if q.cols == nil {
		return fmt.Sprintf("every column (%d)", len(q.t.cols))
	}
	return fmt.Sprintf("%d items", len(q.cols))
}
