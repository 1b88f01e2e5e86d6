package query

import (
	"database/sql/driver"
	"fmt"
	"reflect"
)

// NULL in where expressions. A comparison with NULL is neither true nor
// false in SQL, so "column = NULL" silently matches no row. The query layer
// therefore reads a value that is sent as NULL (nil, a nil pointer, slice
// or map, sql.Null* or a pgtype value that is not Valid) as NULL itself:
//
//	Eq(nil)         column IS NULL
//	Ne(nil)         column IS NOT NULL
//	In(a, nil)      (column = ANY($1) OR column IS NULL), $1 = {a}
//	NotIn(a, nil)   column <> ALL($1), $1 = {a}: never a NULL column
//	NotIn()         column IS NOT NULL
//
// A NULL value on a NOT NULL column, and a NULL bound of Lt, Le, Gt, Ge or
// Between (which would match no row), fail rendering.

// isNull reports whether v is sent as NULL: nil, a nil pointer, slice, map
// or interface, or a driver.Valuer whose value is nil (sql.NullString{},
// pgtype.Int8{}).
func isNull(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
		if rv.IsNil() {
			return true
		}
	}
	if vr, ok := v.(driver.Valuer); ok {
		dv, err := vr.Value()
		return err == nil && dv == nil
	}
	return false
}

// cmpNames are the Column methods of the comparison operators, for
// messages.
var cmpNames = map[string]string{"=": "Eq", "<>": "Ne", "<": "Lt", "<=": "Le", ">": "Gt", ">=": "Ge"}

// renderNullCmp writes column = NULL as IS NULL and column <> NULL as IS
// NOT NULL; it refuses the other operators, which match no row with NULL,
// and NULL on a NOT NULL column.
func renderNullCmp(r *renderer, c *column, name, op string) {
	switch {
	case op != "=" && op != "<>":
		r.fail(fmt.Errorf("%s(NULL) on column %q: a comparison with NULL matches no row; use IsNull or IsNotNull", cmpNames[op], c.name))
	case !c.nullable:
		r.fail(notNullError(cmpNames[op], c))
	case op == "=":
		r.write(name, " IS NULL")
	default:
		r.write(name, " IS NOT NULL")
	}
}

// notNullError is the error of a NULL value compared with a NOT NULL
// column: the condition is constant, which is a mistake.
func notNullError(method string, c *column) error {
	return fmt.Errorf("%s with a NULL value on column %q, which is NOT NULL: no row holds NULL there", method, c.name)
}

// inExpr is In (column = ANY($n)) or NotIn (column <> ALL($n)), with vals
// bound as one array parameter. NULLs are taken out of the list and said
// with IS NULL, as Eq(nil) says them.
type inExpr struct {
	col  colRef
	not  bool
	vals any  // a []V without NULLs, never nil: a nil slice would be NULL
	n    int  // len(vals)
	null bool // the list held a NULL
}

// newIn builds In or NotIn over vs, copied.
func newIn[V any](col colRef, not bool, vs []V) inExpr {
	vals := make([]V, 0, len(vs))
	e := inExpr{col: col, not: not}
	for _, v := range vs {
		if isNull(v) {
			e.null = true
			continue
		}
		vals = append(vals, v)
	}
	e.vals, e.n = vals, len(vals)
	return e
}

func (e inExpr) render(r *renderer, nested bool) {
	c, name := r.resolve(e.col)
	switch {
	case c == nil:
	case e.null && !c.nullable:
		r.fail(notNullError(e.name(), c))
	case e.not && e.n == 0:
		// <> ALL of an empty array is true, even for NULL: say what NotIn
		// promises, every row whose column is not NULL.
		r.write(name, " IS NOT NULL")
	case e.not:
		// A NULL column makes <> ALL NULL, so the row is left out whether
		// or not the list held NULL.
		e.array(r, name, " <> ALL(")
	case !e.null:
		e.array(r, name, " = ANY(")
	case e.n == 0:
		r.write(name, " IS NULL")
	default:
		if nested {
			r.write("(")
		}
		e.array(r, name, " = ANY(")
		r.write(" OR ", name, " IS NULL")
		if nested {
			r.write(")")
		}
	}
}

// array writes column op $n) with the values bound as one array.
func (e inExpr) array(r *renderer, name, op string) {
	r.write(name, op)
	r.param(e.vals)
	r.write(")")
}

// name is the Column method that made e, for messages.
func (e inExpr) name() string {
	if e.not {
		return "NotIn"
	}
	return "In"
}
