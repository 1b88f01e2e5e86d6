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

// And is true when every expression is; And() is TRUE.
func And(exprs ...Expr) Expr { return boolExpr{"AND", append([]Expr{}, exprs...)} }

// Or is true when any expression is; Or() is FALSE.
func Or(exprs ...Expr) Expr { return boolExpr{"OR", append([]Expr{}, exprs...)} }

// Not negates e.
func Not(e Expr) Expr { return notExpr{e} }

// cmpExpr is column OP $n; OP may be "= ANY" or "<> ALL" for an array.
type cmpExpr struct {
	col colRef
	op  string
	val any
}

func (e cmpExpr) render(r *renderer, _ bool) {
	c := r.column(e.col)
	if c == nil {
		return
	}
	if (e.op == "LIKE" || e.op == "ILIKE") && !c.text {
		r.fail(fmt.Errorf("%s on column %q of type %s: it applies to text columns", e.op, c.name, c.sqlType))
		return
	}
	if e.op == "= ANY" || e.op == "<> ALL" {
		r.write(c.quoted, " ", e.op, "(")
		r.param(e.val)
		r.write(")")
		return
	}
	r.write(c.quoted, " ", e.op, " ")
	r.param(e.val)
}

// betweenExpr is column BETWEEN $n AND $m.
type betweenExpr struct {
	col    colRef
	lo, hi any
}

func (e betweenExpr) render(r *renderer, _ bool) {
	r.col(e.col)
	r.write(" BETWEEN ")
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
