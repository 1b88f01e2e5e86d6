package query

import (
	"errors"
	"slices"

	"github.com/piccolo-go/piccolo"
)

// ErrNoWhere is wrapped by the error of an Update or Delete that has no
// Where condition and was not told All(): a forgotten filter must not
// change every row. A Where that matches every row whatever it holds
// (And(), Or(And()), Not(Or()), a nil Expr) is no condition either; only
// All opts in to changing every row.
var ErrNoWhere = errors.New("no Where condition; call All() to change every row")

// Update changes rows: UPDATE ... SET. Build it with Table.Update; it is a
// value, so every method returns a modified copy.
type Update[T any] struct {
	t    *Table[T]
	set  []Assignment
	rows rowFilter
}

// Update starts an UPDATE of the assignments set (made by Column.Set).
func (t *Table[T]) Update(set ...Assignment) Update[T] {
	return Update[T]{t: t, set: slices.Clone(set)}
}

// Set adds assignments.
func (u Update[T]) Set(set ...Assignment) Update[T] {
	u.set = slices.Concat(u.set, set)
	return u
}

// Where adds conditions, joined with AND to any given before.
func (u Update[T]) Where(exprs ...Expr) Update[T] { return u.with(u.rows.and(exprs)) }

// All allows the Update to render without a Where condition, changing
// every row.
func (u Update[T]) All() Update[T] { return u.with(u.rows.everyRow()) }

// Returning adds a RETURNING clause with cols.
func (u Update[T]) Returning(cols ...Col) Update[T] { return u.with(u.rows.returningCols(cols)) }

// with returns u picking its rows with f.
func (u Update[T]) with(f rowFilter) Update[T] {
	u.rows = f
	return u
}

// Querystrings implements piccolo.Query.
func (u Update[T]) Querystrings() ([]piccolo.Querystring, error) {
	r := newRenderer(u.t.def)
	r.write("UPDATE ", u.t.def.quoted, " SET ")
	if len(u.set) == 0 {
		r.fail(errors.New("no assignment; give Set one"))
	}
	for i, a := range u.set {
		if i > 0 {
			r.write(", ")
		}
		r.col(a.col)
		r.write(" = ")
		if e, ok := a.val.(sqlExpr); ok {
			e.render(r, true)
		} else {
			r.param(a.val)
		}
	}
	u.rows.render(r)
	return one(r.querystring("Update"))
}

// rowFilter is what Update and Delete share: the conditions that pick
// their rows, whether All opted in to every row, and the RETURNING columns.
type rowFilter struct {
	where     []Expr
	all       bool
	returning []colRef
}

// and returns a copy with exprs joined with AND to the conditions given
// before.
func (f rowFilter) and(exprs []Expr) rowFilter {
	f.where = slices.Concat(f.where, exprs)
	return f
}

// everyRow returns a copy that renders without a condition.
func (f rowFilter) everyRow() rowFilter {
	f.all = true
	return f
}

// returningCols returns a copy whose RETURNING clause lists cols.
func (f rowFilter) returningCols(cols []Col) rowFilter {
	f.returning = refs(cols)
	return f
}

// render writes the WHERE and RETURNING clauses. Without All, conditions
// that match every row unconditionally (none, nil ones, or only empty
// Ands, at any depth, however wrapped: Or(And()) is TRUE) record
// ErrNoWhere.
func (f rowFilter) render(r *renderer) {
	if !f.all && truthOf(boolExpr{"AND", f.where}) == alwaysTrue {
		r.fail(ErrNoWhere)
	}
	r.where(f.where)
	r.returning(f.returning)
}

// Delete removes rows: DELETE FROM. Build it with Table.Delete; it is a
// value, so every method returns a modified copy.
type Delete[T any] struct {
	t    *Table[T]
	op   string // "" for Delete from; Remove from
	rows rowFilter
}

// Delete starts a DELETE; it renders only with a Where condition or All.
func (t *Table[T]) Delete() Delete[T] { return Delete[T]{t: t} }

// Where adds conditions, joined with AND to any given before.
func (d Delete[T]) Where(exprs ...Expr) Delete[T] { return d.with(d.rows.and(exprs)) }

// All allows the Delete to render without a Where condition, deleting
// every row.
func (d Delete[T]) All() Delete[T] { return d.with(d.rows.everyRow()) }

// Returning adds a RETURNING clause with cols.
func (d Delete[T]) Returning(cols ...Col) Delete[T] { return d.with(d.rows.returningCols(cols)) }

// with returns d picking its rows with f.
func (d Delete[T]) with(f rowFilter) Delete[T] {
	d.rows = f
	return d
}

// Querystrings implements piccolo.Query.
func (d Delete[T]) Querystrings() ([]piccolo.Querystring, error) {
	r := newRenderer(d.t.def)
	r.write("DELETE FROM ", d.t.def.quoted)
	d.rows.render(r)
	op := d.op
	if op == "" {
		op = "Delete from"
	}
	return one(r.querystring(op))
}
