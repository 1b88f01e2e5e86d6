package query

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/piccolo-go/piccolo"
)

// Select reads rows of T. Build it with Table.Select; it is a value, so
// every method returns a modified copy (see the package documentation).
// With Into it projects into a struct of your own instead, which may hold
// columns of joined tables, aggregates and scalar subqueries.
type Select[T any] struct {
	t *Table[T]
	q selectCore
}

// selectCore is everything a SELECT says, whatever its rows scan into.
type selectCore struct {
	t         *tableDef
	cols      []colRef // nil: every column
	joins     []explicitJoin
	where     []Expr
	group     []colRef
	having    []Expr
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
// Columns of joined tables, aggregates and subqueries need a struct of
// their own: see Into.
func (t *Table[T]) Select(cols ...Col) Select[T] {
	s := Select[T]{t: t, q: selectCore{t: t.def}}
	if len(cols) > 0 {
		s.q.cols = refs(cols)
	}
	return s
}

// Where adds conditions, joined with AND to any given before. They may use
// columns of joined tables (Column.Via) and subqueries, not aggregates
// (see Having).
func (s Select[T]) Where(exprs ...Expr) Select[T] {
	s.q.where = slices.Concat(s.q.where, exprs)
	return s
}

// OrderBy adds ORDER BY terms after any given before.
func (s Select[T]) OrderBy(o ...Order) Select[T] {
	s.q.order = slices.Concat(s.q.order, o)
	return s
}

// Limit returns at most n rows (bound as a parameter). A negative n fails
// rendering.
func (s Select[T]) Limit(n int) Select[T] {
	s.q.limit, s.q.hasLimit = n, true
	return s
}

// Offset skips the first n rows (bound as a parameter); use it with
// OrderBy, or the rows skipped are arbitrary.
func (s Select[T]) Offset(n int) Select[T] {
	s.q.offset, s.q.hasOffset = n, true
	return s
}

// Distinct drops duplicate rows: SELECT DISTINCT.
func (s Select[T]) Distinct() Select[T] {
	s.q.distinct = true
	return s
}

// GroupBy groups the rows by cols (GROUP BY), so that aggregates in the
// select list, Having and OrderBy are computed per group. Every column
// selected or ordered by must then be grouped, or belong to a table whose
// primary key is grouped (PostgreSQL's rule); rendering checks it.
func (s Select[T]) GroupBy(cols ...Col) Select[T] {
	s.q.group = slices.Concat(s.q.group, refs(cols))
	return s
}

// Having adds conditions on groups (HAVING), joined with AND: aggregates
// compared with values, CountRows().Gt(2).
func (s Select[T]) Having(exprs ...Expr) Select[T] {
	s.q.having = slices.Concat(s.q.having, exprs)
	return s
}

// JoinOn joins j (made by JoinTable) on the conditions on, for joins that
// do not follow a foreign key: INNER JOIN ... AS alias ON ... . The
// conditions may use the statement's table and earlier JoinOn tables.
func (s Select[T]) JoinOn(j Join, on ...Expr) Select[T] {
	s.q.joins = append(slices.Clip(s.q.joins), explicitJoin{j: j, on: slices.Clone(on)})
	return s
}

// LeftJoinOn is JoinOn as a LEFT JOIN: rows without a match stay, with
// the joined table's columns NULL.
func (s Select[T]) LeftJoinOn(j Join, on ...Expr) Select[T] {
	s.q.joins = append(slices.Clip(s.q.joins), explicitJoin{j: j, left: true, on: slices.Clone(on)})
	return s
}

// ForUpdate locks the selected rows until the transaction ends: FOR
// UPDATE. Outside a transaction the lock ends with the statement.
func (s Select[T]) ForUpdate() Select[T] {
	s.q.lock = "FOR UPDATE"
	return s
}

// ForShare takes a shared lock on the selected rows: FOR SHARE.
func (s Select[T]) ForShare() Select[T] {
	s.q.lock = "FOR SHARE"
	return s
}

// SkipLocked skips rows another transaction has locked (a work queue); it
// needs ForUpdate or ForShare.
func (s Select[T]) SkipLocked() Select[T] {
	s.q.wait = "SKIP LOCKED"
	return s
}

// NoWait fails at once instead of waiting for a locked row; it needs
// ForUpdate or ForShare.
func (s Select[T]) NoWait() Select[T] {
	s.q.wait = "NOWAIT"
	return s
}

// Querystrings implements piccolo.Query.
func (s Select[T]) Querystrings() ([]piccolo.Querystring, error) {
	q, _, err := s.render()
	return one(q, err)
}

// render renders the statement and reports the selected columns in order,
// which is the scan plan: columns of T's own table.
func (s Select[T]) render() (piccolo.Querystring, []*column, error) {
	d := s.t.def
	cols := d.cols
	if s.q.cols != nil {
		cols = make([]*column, len(s.q.cols))
		for i, ref := range s.q.cols {
			if ref.err == nil && (ref.via != nil || ref.expr != nil) {
				return piccolo.Querystring{}, nil, &opError{op: "Select", table: d.name,
					err: fmt.Errorf("%s does not scan into %s: project into a struct of your own with query.Into", ref.describe(), d.goType)}
			}
			cols[i] = ref.c
		}
	}
	q, err := s.q.statement("Select")
	return q, cols, err
}

// statement renders the SELECT as a statement of its own. A first pass
// finds the joins; a statement that has any renders again with every
// column qualified.
func (q *selectCore) statement(what string) (piccolo.Querystring, error) {
	r := newStatement(q.t, len(q.t.selectAll))
	r.own = scope{base: q.t, explicit: q.joins}
	r.sc = &r.own
	q.write(r)
	if r.err == nil && (len(r.own.joins) > 0 || len(q.joins) > 0) {
		found := r.own.joins
		r = newStatement(q.t, r.b.Len()+64)
		r.own = scope{base: q.t, explicit: q.joins, joins: found, qualify: true}
		r.sc = &r.own
		q.write(r)
	}
	return r.querystring(what)
}

// write writes the SELECT with r.sc as its scope.
func (q *selectCore) write(r *renderer) {
	sc := r.sc
	if q.cols == nil && !q.distinct && !sc.qualify && len(q.joins) == 0 && sc.outer == nil {
		r.write(q.t.selectAll)
	} else {
		r.write("SELECT ")
		if q.distinct {
			r.write("DISTINCT ")
		}
		q.writeItems(r)
		sc.writeFrom(r)
	}
	sc.noAggregates = "Where"
	r.where(q.where)
	sc.noAggregates = "GroupBy"
	for i, ref := range q.group {
		if i == 0 {
			r.write(" GROUP BY ")
		} else {
			r.write(", ")
		}
		r.col(ref)
	}
	sc.noAggregates = ""
	if len(q.having) > 0 {
		r.write(" HAVING ")
		renderExpr(r, boolExpr{"AND", q.having}, false)
	}
	r.orderBy(q.order)
	q.checkGroups(r)
	if q.hasLimit {
		r.write(" LIMIT ")
		r.param(q.limit)
	}
	if q.hasOffset {
		r.write(" OFFSET ")
		r.param(q.offset)
	}
	q.renderLock(r)
}

// writeItems writes the select list: the columns (every column of the
// table when none were given), aggregates and subqueries, with AS for the
// ones given a name.
func (q *selectCore) writeItems(r *renderer) {
	items := q.cols
	if items == nil {
		items = make([]colRef, len(q.t.cols))
		for i, c := range q.t.cols {
			items[i] = colRef{c: c}
		}
	}
	for i, ref := range items {
		if i > 0 {
			r.write(", ")
		}
		r.value(ref)
		if ref.alias != "" {
			alias, err := quoteIdent(ref.alias)
			if err != nil {
				r.fail(fmt.Errorf("As: %w", err))
			}
			r.write(" AS ", alias)
		}
	}
}

// renderLock writes the locking clause and checks its combinations.
func (q *selectCore) renderLock(r *renderer) {
	switch {
	case q.limit < 0 || q.offset < 0:
		r.fail(errors.New("negative Limit or Offset: " + strconv.Itoa(min(q.limit, q.offset))))
	case q.wait != "" && q.lock == "":
		r.fail(errors.New(q.wait + " needs ForUpdate or ForShare"))
	case q.lock != "" && q.distinct:
		r.fail(errors.New("PostgreSQL does not allow " + q.lock + " with DISTINCT"))
	case q.lock != "" && q.grouped():
		r.fail(errors.New("PostgreSQL does not allow " + q.lock + " with GROUP BY or aggregates"))
	case q.lock != "" && slices.ContainsFunc(q.joins, func(e explicitJoin) bool { return e.left }):
		r.fail(errors.New("PostgreSQL does not allow " + q.lock + " with a LEFT JOIN (the nullable side cannot be locked)"))
	case q.lock != "" && slices.ContainsFunc(r.sc.joins, func(n *joinNode) bool { return n.left }):
		r.fail(errors.New("PostgreSQL does not allow " + q.lock + " with a LEFT JOIN (a join along a nullable foreign key)"))
	case q.distinct && q.cols != nil && slices.ContainsFunc(q.order, func(o Order) bool {
		return !slices.ContainsFunc(q.cols, func(c colRef) bool { return sameRef(c, o.col) })
	}):
		r.fail(errors.New("with Distinct, OrderBy columns must be selected (PostgreSQL requires it)"))
	case q.lock != "":
		r.write(" ", q.lock)
		if q.wait != "" {
			r.write(" ", q.wait)
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
		r.value(o.col)
		if o.dir == "" {
			r.fail(errors.New("zero Order: make orderings with Asc or Desc"))
		}
		r.write(" ", o.dir)
	}
}

// filtered is what Count and Exists share: a table and the conditions its
// rows must meet, rendered between a statement's head and tail.
type filtered struct {
	t     *tableDef
	where []Expr
}

// and returns a copy with exprs joined with AND to any given before.
func (f filtered) and(exprs []Expr) filtered {
	f.where = slices.Concat(f.where, exprs)
	return f
}

// render writes head, the quoted table, the WHERE clause and tail; what
// names the statement in errors.
func (f filtered) render(what, head, tail string) ([]piccolo.Querystring, error) {
	r := newRenderer(f.t)
	r.write(head, f.t.quoted)
	r.where(f.where)
	r.write(tail)
	return one(r.querystring(what))
}

// Count counts rows: SELECT count(*). Build it with Table.Count.
type Count struct{ f filtered }

// Count starts a SELECT count(*) over the table.
func (t *Table[T]) Count() Count { return Count{filtered{t: t.def}} }

// Where adds conditions, joined with AND to any given before.
func (c Count) Where(exprs ...Expr) Count { return Count{c.f.and(exprs)} }

// Querystrings implements piccolo.Query.
func (c Count) Querystrings() ([]piccolo.Querystring, error) {
	return c.f.render("Count", "SELECT count(*) FROM ", "")
}

// Exists asks whether any row matches: SELECT EXISTS (...), which stops at
// the first match. Build it with Table.Exists.
type Exists struct{ f filtered }

// Exists starts a SELECT EXISTS over the table.
func (t *Table[T]) Exists() Exists { return Exists{filtered{t: t.def}} }

// Where adds conditions, joined with AND to any given before.
func (e Exists) Where(exprs ...Expr) Exists { return Exists{e.f.and(exprs)} }

// Querystrings implements piccolo.Query.
func (e Exists) Querystrings() ([]piccolo.Querystring, error) {
	return e.f.render("Exists", "SELECT EXISTS (SELECT 1 FROM ", ")")
}
