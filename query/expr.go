package query

import "fmt"

// Expr is a boolean SQL expression for Where: made by Column's comparison
// methods, combined with And, Or and Not, or written by hand with SQL.
type Expr interface {
	// render writes the expression; nested asks for parentheses where
	// precedence could otherwise change its meaning.
	render(r *renderer, nested bool)
}

// renderExpr renders e, refusing a nil Expr.
func renderExpr(r *renderer, e Expr, nested bool) {
	if e == nil {
		r.fail(fmt.Errorf("nil Expr"))
		return
	}
	e.render(r, nested)
}

// And is true when every expression is. And() is TRUE: it matches every
// row, so an Update or Delete whose Where is nothing but empty Ands (at any
// depth) has no condition and fails with ErrNoWhere unless told All.
func And(exprs ...Expr) Expr { return boolExpr{"AND", append([]Expr{}, exprs...)} }

// Or is true when any expression is. Or() is FALSE: no alternative, so it
// matches no row, as a search over an empty list of alternatives should.
// An Or holding an expression that is always TRUE (an empty And) matches
// every row, and counts as no condition for ErrNoWhere.
func Or(exprs ...Expr) Expr { return boolExpr{"OR", append([]Expr{}, exprs...)} }

// Not negates e.
func Not(e Expr) Expr { return notExpr{e} }

// cmpExpr is column OP $n, or IS [NOT] NULL for a NULL value.
type cmpExpr struct {
	col colRef
	op  string
	val any
}

func (e cmpExpr) render(r *renderer, _ bool) {
	if e.col.expr != nil {
		renderItemCmp(r, e)
		return
	}
	c, name := r.resolve(e.col)
	switch {
	case c == nil:
	case (e.op == "LIKE" || e.op == "ILIKE") && !c.text:
		r.fail(fmt.Errorf("%s on column %q of type %s: it applies to text columns", e.op, c.name, c.sqlType))
	case isNull(e.val):
		renderNullCmp(r, c, name, e.op)
	default:
		r.write(name, " ", e.op, " ")
		if other, ok := e.val.(colRef); ok {
			r.col(other)
			return
		}
		r.param(e.val)
	}
}

// betweenExpr is column BETWEEN $n AND $m.
type betweenExpr struct {
	col    colRef
	lo, hi any
}

func (e betweenExpr) render(r *renderer, _ bool) {
	c, name := r.resolve(e.col)
	switch {
	case c == nil:
		return
	case isNull(e.lo) || isNull(e.hi):
		r.fail(fmt.Errorf("Between with a NULL bound on column %q: a comparison with NULL matches no row", c.name))
		return
	}
	r.write(name, " BETWEEN ")
	r.param(e.lo)
	r.write(" AND ")
	r.param(e.hi)
}

// nullExpr is column IS [NOT] NULL.
type nullExpr struct {
	col colRef
	op  string
}

func (e nullExpr) render(r *renderer, _ bool) {
	r.col(e.col)
	r.write(" ", e.op)
}

// boolExpr joins expressions with AND or OR.
type boolExpr struct {
	op    string
	exprs []Expr
}

func (e boolExpr) render(r *renderer, nested bool) {
	switch len(e.exprs) {
	case 0:
		if e.op == "AND" {
			r.write("TRUE")
		} else {
			r.write("FALSE")
		}
		return
	case 1:
		renderExpr(r, e.exprs[0], nested)
		return
	}
	if nested {
		r.write("(")
	}
	for i, x := range e.exprs {
		if i > 0 {
			r.write(" ", e.op, " ")
		}
		renderExpr(r, x, true)
	}
	if nested {
		r.write(")")
	}
}

// notExpr is NOT (e).
type notExpr struct{ e Expr }

func (e notExpr) render(r *renderer, _ bool) {
	r.write("NOT (")
	renderExpr(r, e.e, false)
	r.write(")")
}

// truth is what an expression is known to be before it reaches the
// server: for the ErrNoWhere guard, a condition that is always TRUE is no
// condition at all.
type truth int8

const (
	dependsOnRow truth = iota
	alwaysTrue
	alwaysFalse
)

// truthOf folds the constant parts of e: empty And and Or, Not of them,
// In with no values. A nil Expr counts as no condition (it fails
// rendering anyway). Everything else depends on the row, SQL fragments
// included.
func truthOf(e Expr) truth {
	switch e := e.(type) {
	case nil:
		return alwaysTrue
	case boolExpr:
		// An AND is decided by a FALSE, an OR by a TRUE; with neither it
		// is TRUE (AND) or FALSE (OR) when every part is constant.
		decides, empty := alwaysFalse, alwaysTrue
		if e.op == "OR" {
			decides, empty = alwaysTrue, alwaysFalse
		}
		out := empty
		for _, x := range e.exprs {
			switch truthOf(x) {
			case decides:
				return decides
			case dependsOnRow:
				out = dependsOnRow
			}
		}
		return out
	case notExpr:
		switch truthOf(e.e) {
		case alwaysTrue:
			return alwaysFalse
		case alwaysFalse:
			return alwaysTrue
		}
	case inExpr:
		if !e.not && !e.null && e.n == 0 {
			return alwaysFalse
		}
	}
	return dependsOnRow
}
