package query

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/piccolo-go/piccolo"
)

// renderer accumulates one statement's SQL and arguments. The first error
// sticks: later writes are ignored and finish returns it.
type renderer struct {
	b     strings.Builder
	args  []any
	table *tableDef
	sc    *scope // a SELECT's tables; nil: the statement has only its table
	err   error
	// own is the scope of the SELECT this renderer renders, kept here so
	// that a point read allocates no scope of its own.
	own scope
}

func newRenderer(t *tableDef) *renderer { return &renderer{table: t} }

// newStatement returns a renderer whose buffers are sized for a typical
// statement, so that rendering one allocates each once.
func newStatement(t *tableDef, sqlLen int) *renderer {
	r := &renderer{table: t, args: make([]any, 0, 4)}
	r.b.Grow(sqlLen + 64)
	return r
}

// write appends SQL text.
func (r *renderer) write(s ...string) {
	for _, x := range s {
		r.b.WriteString(x)
	}
}

// param binds v to the next $n and writes the placeholder.
func (r *renderer) param(v any) {
	r.args = append(r.args, v)
	r.write("$", strconv.Itoa(len(r.args)))
}

// fail records err unless an earlier error is already recorded.
func (r *renderer) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// quoted returns the quoted name q, recording err, the error of a name
// that cannot be quoted.
func (r *renderer) quoted(q string, err error) string {
	if err != nil {
		r.fail(err)
	}
	return q
}

// column resolves ref to one of the statement's table's columns, or records
// why it cannot be used.
func (r *renderer) column(ref colRef) *column {
	c, _ := r.resolve(ref)
	return c
}

// resolve resolves ref to a column and its SQL name: "name", or in a
// SELECT with joins or a subquery "table"."name" and "alias"."name".
func (r *renderer) resolve(ref colRef) (*column, string) {
	switch {
	case ref.err != nil:
		r.fail(ref.err)
	case ref.expr != nil:
		r.fail(errors.New(ref.expr.describe() + " where a column is needed"))
	case ref.c == nil:
		r.fail(errZeroColumn)
	case r.sc != nil:
		return r.sc.resolve(r, ref)
	case ref.via != nil:
		r.fail(fmt.Errorf("column %q is reached through a join, which only a Select has", ref.c.name))
	case ref.c.table != r.table:
		r.fail(fmt.Errorf("column %q belongs to table %q, not %q", ref.c.name, ref.c.table.name, r.table.name))
	default:
		return ref.c, ref.c.quoted
	}
	return nil, ""
}

// col writes a column's name.
func (r *renderer) col(ref colRef) {
	if _, name := r.resolve(ref); name != "" {
		r.write(name)
	}
}

// value writes a column, or the aggregate or subquery ref stands for.
func (r *renderer) value(ref colRef) {
	if ref.expr != nil && ref.err == nil {
		ref.expr.renderItem(r)
		return
	}
	r.col(ref)
}

// colList writes quoted names separated by commas.
func (r *renderer) colList(refs []colRef) {
	for i, ref := range refs {
		if i > 0 {
			r.write(", ")
		}
		r.col(ref)
	}
}

// where writes " WHERE a AND b" for the non-empty list exprs.
func (r *renderer) where(exprs []Expr) {
	if len(exprs) == 0 {
		return
	}
	r.write(" WHERE ")
	if len(exprs) == 1 {
		renderExpr(r, exprs[0], false)
		return
	}
	boolExpr{"AND", exprs}.render(r, false)
}

// returning writes " RETURNING a, b" for a non-empty list.
func (r *renderer) returning(refs []colRef) {
	if len(refs) > 0 {
		r.write(" RETURNING ")
		r.colList(refs)
	}
}

// querystring returns the statement, or the first error wrapped with what
// was being rendered.
func (r *renderer) querystring(what string) (piccolo.Querystring, error) {
	if r.err != nil {
		return piccolo.Querystring{}, &opError{op: what, table: r.table.name, err: r.err}
	}
	if len(r.args) == 0 {
		return piccolo.Querystring{SQL: r.b.String()}, nil
	}
	return piccolo.Querystring{SQL: r.b.String(), Args: r.args}, nil
}

// opError is an error of the query layer's own: a query that fails to
// render, or a result that breaks the query's contract. It names the
// operation and its table once, under one "query:" prefix. Errors from the
// engine are returned as they are: they name the statement that failed.
type opError struct {
	op    string // Select, Insert into, Save, GetOrCreate in, ...
	table string
	err   error
}

func (e *opError) Error() string { return fmt.Sprintf("query: %s %q: %v", e.op, e.table, e.err) }

func (e *opError) Unwrap() error { return e.err }

// relabel gives an opError of a builder that another is made of (Save's
// Insert, GetOrCreate's Select and Insert) the name of the operation the
// caller asked for; other errors pass as they are.
func relabel(err error, op string) error {
	var oe *opError
	if errors.As(err, &oe) {
		return &opError{op: op, table: oe.table, err: oe.err}
	}
	return err
}

// one wraps a single statement as Querystrings' result.
func one(q piccolo.Querystring, err error) ([]piccolo.Querystring, error) {
	if err != nil {
		return nil, err
	}
	return []piccolo.Querystring{q}, nil
}

// refs converts a list of Col to their references.
func refs(cols []Col) []colRef {
	out := make([]colRef, len(cols))
	for i, c := range cols {
		out[i] = refOf(c)
	}
	return out
}

// refOf is c's reference, or for a nil Col one that fails rendering with
// errZeroColumn.
func refOf(c Col) colRef {
	if c == nil {
		return colRef{err: errZeroColumn}
	}
	return c.ref()
}
