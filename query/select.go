package query

import (
	"errors"
	"slices"
	"strconv"

	"github.com/piccolo-go/piccolo"
)

// Select reads rows of T. Build it with Table.Select; it is a value, so
// every method returns a modified copy (see the package documentation).
type Select[T any] struct {
	t         *Table[T]
	cols      []colRef // nil: every column
	where     []Expr
	order     []Order
	limit     int
	hasLimit  bool
	offset    int
	hasOffset bool
	distinct  bool
	lock      string // "" or "FOR UPDATE" / "FOR SHARE"
	wait      string // "" or "SKIP LOCKED" / "NOWAIT"
}

// Select starts a SELECT of cols, or of every column when none are given.
// Rows scan into T; fields of columns not selected keep their zero value.
func (t *Table[T]) Select(cols ...Col) Select[T] {
	s := Select[T]{t: t}
	if len(cols) > 0 {
		s.cols = refs(cols)
	}
	return s
}

// Where adds conditions, joined with AND to any given before.
func (s Select[T]) Where(exprs ...Expr) Select[T] {
	s.where = slices.Concat(s.where, exprs)
	return s
}

// OrderBy adds ORDER BY terms after any given before.
func (s Select[T]) OrderBy(o ...Order) Select[T] {
	s.order = slices.Concat(s.order, o)
	return s
}

// Limit returns at most n rows (bound as a parameter). A negative n fails
// rendering.
func (s Select[T]) Limit(n int) Select[T] {
	s.limit, s.hasLimit = n, true
	return s
}

// Offset skips the first n rows (bound as a parameter); use it with
// OrderBy, or the rows skipped are arbitrary.
func (s Select[T]) Offset(n int) Select[T] {
	s.offset, s.hasOffset = n, true
	return s
}

// Distinct drops duplicate rows: SELECT DISTINCT.
func (s Select[T]) Distinct() Select[T] {
	s.distinct = true
	return s
}

// ForUpdate locks the selected rows until the transaction ends: FOR
// UPDATE. Outside a transaction the lock ends with the statement.
func (s Select[T]) ForUpdate() Select[T] {
	s.lock = "FOR UPDATE"
	return s
}

// ForShare takes a shared lock on the selected rows: FOR SHARE.
func (s Select[T]) ForShare() Select[T] {
	s.lock = "FOR SHARE"
	return s
}

// SkipLocked skips rows another transaction has locked (a work queue); it
// needs ForUpdate or ForShare.
func (s Select[T]) SkipLocked() Select[T] {
	s.wait = "SKIP LOCKED"
	return s
}

// NoWait fails at once instead of waiting for a locked row; it needs
// ForUpdate or ForShare.
func (s Select[T]) NoWait() Select[T] {
	s.wait = "NOWAIT"
	return s
}

// Querystrings implements piccolo.Query.
func (s Select[T]) Querystrings() ([]piccolo.Querystring, error) {
	q, _, err := s.render()
	return one(q, err)
}

// render renders the statement and reports the selected columns in order,
// which is the scan plan.
func (s Select[T]) render() (piccolo.Querystring, []*column, error) {
	d := s.t.def
	r := newStatement(d, len(d.selectAll))
	cols := d.cols
	switch {
	case s.cols == nil && !s.distinct:
		r.write(d.selectAll)
	default:
		r.write("SELECT ")
		if s.distinct {
			r.write("DISTINCT ")
		}
		if s.cols != nil {
			cols = make([]*column, 0, len(s.cols))
			for _, ref := range s.cols {
				cols = append(cols, r.column(ref))
			}
		}
		for i, c := range cols {
			if i > 0 {
				r.write(", ")
			}
			if c != nil {
				r.write(c.quoted)
			}
		}
		r.write(" FROM ", d.quoted)
	}
	r.where(s.where)
	r.orderBy(s.order)
	if s.hasLimit {
		r.write(" LIMIT ")
		r.param(s.limit)
	}
	if s.hasOffset {
		r.write(" OFFSET ")
		r.param(s.offset)
	}
	s.renderLock(r)
	q, err := r.querystring("Select")
	return q, cols, err
}

// renderLock writes the locking clause and checks its combinations.
func (s Select[T]) renderLock(r *renderer) {
	switch {
	case s.limit < 0 || s.offset < 0:
		r.fail(errors.New("negative Limit or Offset: " + strconv.Itoa(min(s.limit, s.offset))))
	case s.wait != "" && s.lock == "":
		r.fail(errors.New(s.wait + " needs ForUpdate or ForShare"))
	case s.lock != "" && s.distinct:
		r.fail(errors.New("PostgreSQL does not allow " + s.lock + " with DISTINCT"))
	case s.distinct && s.cols != nil && slices.ContainsFunc(s.order, func(o Order) bool {
		return !slices.ContainsFunc(s.cols, func(c colRef) bool { return c.c == o.col.c })
	}):
		r.fail(errors.New("with Distinct, OrderBy columns must be selected (PostgreSQL requires it)"))
	case s.lock != "":
		r.write(" ", s.lock)
		if s.wait != "" {
			r.write(" ", s.wait)
		}
	}
}

// orderBy writes " ORDER BY a ASC, b DESC" for a non-empty list.
func (r *renderer) orderBy(order []Order) {
	for i, o := range order {
		if i == 0 {
			r.write(" ORDER BY ")
		} else {
			r.write(", ")
		}
		r.col(o.col)
		if o.dir == "" {
			r.fail(errors.New("zero Order: make orderings with Asc or Desc"))
		}
		r.write(" ", o.dir)
	}
}

// Count counts rows: SELECT count(*). Build it with Table.Count.
type Count struct {
	t     *tableDef
	where []Expr
}

// Count starts a SELECT count(*) over the table.
func (t *Table[T]) Count() Count { return Count{t: t.def} }

// Where adds conditions, joined with AND to any given before.
func (c Count) Where(exprs ...Expr) Count {
	c.where = slices.Concat(c.where, exprs)
	return c
}

// Querystrings implements piccolo.Query.
func (c Count) Querystrings() ([]piccolo.Querystring, error) {
	r := newRenderer(c.t)
	r.write("SELECT count(*) FROM ", c.t.quoted)
	r.where(c.where)
	return one(r.querystring("Count"))
}

// Exists asks whether any row matches: SELECT EXISTS (...), which stops at
// the first match. Build it with Table.Exists.
type Exists struct {
	t     *tableDef
	where []Expr
}

// Exists starts a SELECT EXISTS over the table.
func (t *Table[T]) Exists() Exists { return Exists{t: t.def} }

// Where adds conditions, joined with AND to any given before.
func (e Exists) Where(exprs ...Expr) Exists {
	e.where = slices.Concat(e.where, exprs)
	return e
}

// Querystrings implements piccolo.Query.
func (e Exists) Querystrings() ([]piccolo.Querystring, error) {
	r := newRenderer(e.t)
	r.write("SELECT EXISTS (SELECT 1 FROM ", e.t.quoted)
	r.where(e.where)
	r.write(")")
	return one(r.querystring("Exists"))
}
