package query

import (
	"errors"
	"fmt"
)

// Join is a table joined into a Select: the row a foreign key points at
// (Column.Join) or a table joined on a condition of your own (JoinTable and
// Select.JoinOn). Its columns are reached with Column.Via:
//
//	concert := TicketConcert.Join(Concerts)       // ticket → concert
//	band := ConcertBand1.Via(concert).Join(Bands) // → band
//	Tickets.Select().Where(BandName.Via(band).Eq("Pythonistas"))
//
// A Join is a value; using it in several places of one Select joins its
// table once. A failed Join (a column that is not a foreign key to that
// table) carries its error to every query that uses it.
type Join struct {
	n   *joinNode
	err error
}

// joinNode is one joined table. A foreign-key join hangs off the table
// that holds fk: the statement's own table when parent is nil and the join
// is not explicit, else parent's table.
type joinNode struct {
	parent   *joinNode // the join that fk was reached through; nil: the statement's table
	fk       *column   // the foreign key, nil for an explicit join
	t        *tableDef // the joined table
	ref      *column   // t's column that fk references
	left     bool      // LEFT JOIN: fk is nullable, or parent is a LEFT JOIN
	explicit bool      // made by JoinTable: joined by Select.JoinOn
	alias    string    // unquoted; unique within a statement
}

// Joinable is a table that can be joined: every *Table.
type Joinable interface {
	tableDef() *tableDef
}

func (t *Table[T]) tableDef() *tableDef { return t.def }

// Join joins the table to that the foreign key c points at (fk=TABLE in
// c's tag; to must be that table): a LEFT JOIN when c is nullable, so that
// rows without a referenced row stay, else an INNER JOIN. Joins chain: a
// foreign key reached through a join (Via) joins from that join's table,
// and a join after a LEFT JOIN is a LEFT JOIN too.
//
// The joined table is named by an alias that is the path of foreign keys
// that leads to it, from the statement's table: "ticket.concert.band_1".
func (c Column[V]) Join(to Joinable) Join {
	col := c.r.c
	switch {
	case c.r.err != nil:
		return Join{err: c.r.err}
	case c.r.expr != nil || col == nil:
		return Join{err: errZeroColumn}
	case to == nil:
		return Join{err: errors.New("query: Join: nil table")}
	case col.fkTable == "":
		return Join{err: fmt.Errorf("query: Join: column %q of %q is not a foreign key (no fk= in its tag)", col.name, col.table.name)}
	}
	t := to.tableDef()
	if t.name != col.fkTable || (col.fkSchema != "" && col.fkSchema != t.schema) {
		return Join{err: fmt.Errorf("query: Join: column %q of %q references %q, not %q", col.name, col.table.name, col.fkTable, t.name)}
	}
	n := &joinNode{parent: c.r.via, fk: col, t: t, left: col.nullable}
	for _, rc := range t.cols {
		if rc.name == col.fkColumn {
			n.ref = rc
		}
	}
	if n.ref == nil {
		return Join{err: fmt.Errorf("query: Join: column %q of %q references column %q, which %q does not declare", col.name, col.table.name, col.fkColumn, t.name)}
	}
	base := col.table.name
	if n.parent != nil {
		base = n.parent.alias
		n.left = n.left || n.parent.left
	}
	n.alias = base + "." + col.name
	return Join{n: n}
}

// JoinTable names the table to for a join on a condition of your own,
// which Select.JoinOn or LeftJoinOn adds to a query; alias is how the
// statement calls it. Reach its columns with Via, as with Column.Join.
func JoinTable(to Joinable, alias string) Join {
	if to == nil {
		return Join{err: errors.New("query: JoinTable: nil table")}
	}
	if _, err := quoteIdent(alias); err != nil {
		return Join{err: fmt.Errorf("query: JoinTable: alias: %w", err)}
	}
	return Join{n: &joinNode{t: to.tableDef(), explicit: true, alias: alias}}
}

// Via is the column c of the table j joined: c must be a column of that
// table. It compares, orders and selects like any column.
func (c Column[V]) Via(j Join) Column[V] {
	switch {
	case j.err != nil:
		return Column[V]{r: colRef{err: j.err}}
	case j.n == nil:
		return Column[V]{r: colRef{err: errors.New("query: Via: zero Join: make joins with Column.Join or JoinTable")}}
	case c.r.err == nil && c.r.c != nil && c.r.c.table != j.n.t:
		return Column[V]{r: colRef{err: fmt.Errorf("query: Via: column %q belongs to table %q, not to the joined %q", c.r.c.name, c.r.c.table.name, j.n.t.name)}}
	}
	c.r.via = j.n
	return c
}

// root is the join a chain starts from: the first foreign-key join off
// the statement's table, or an explicit join.
func (n *joinNode) root() *joinNode {
	for n.parent != nil {
		n = n.parent
	}
	return n
}

// explicitJoin is a JoinOn of a Select.
type explicitJoin struct {
	j    Join
	left bool
	on   []Expr
}

// scope is what column references resolve against while a SELECT renders:
// its table, its joins and, in a subquery, the enclosing SELECT's scope.
type scope struct {
	base     *tableDef
	explicit []explicitJoin
	joins    []*joinNode // foreign-key joins in the order first used, parents first
	qualify  bool        // write table.column: the statement has joins or is a subquery
	outer    *scope
	inOn     bool // rendering an explicit join's ON condition
	// noJoins: the statement is not a SELECT that can join (the Update,
	// Delete, Count or Exists around a subquery).
	noJoins bool
	// noAggregates names the clause being rendered where aggregates are
	// not allowed (Where, GroupBy); "" where they are.
	noAggregates string
}

// resolve finds the scope ref belongs to and returns its column (made
// nullable when reached through a LEFT JOIN) and its SQL name.
func (sc *scope) resolve(r *renderer, ref colRef) (*column, string) {
	c := ref.c
	for s, depth := sc, 0; s != nil; s, depth = s.outer, depth+1 {
		if ref.via == nil {
			if c.table != s.base {
				continue
			}
			if s.qualify || depth > 0 {
				return c, s.base.quoted + "." + c.quoted
			}
			return c, c.quoted
		}
		if !s.owns(ref.via.root()) {
			continue
		}
		if sc.inOn && depth == 0 && !ref.via.explicit {
			r.fail(fmt.Errorf("column %q: an explicit join's condition can use the statement's table and explicit joins, not tables joined through foreign keys", c.name))
			return nil, ""
		}
		alias, err := s.register(ref.via)
		if err != nil {
			r.fail(err)
			return nil, ""
		}
		if ref.via.left && !c.nullable {
			nc := *c
			nc.nullable = true // no joined row reads as NULL
			c = &nc
		}
		return c, alias + "." + c.quoted
	}
	if ref.via != nil {
		r.fail(fmt.Errorf("column %q of %q is reached through a join that starts from %q, which is not in this query", c.name, c.table.name, ref.via.root().originName()))
	} else {
		r.fail(fmt.Errorf("column %q belongs to table %q, not %q: join it with Column.Join", c.name, c.table.name, sc.base.name))
	}
	return nil, ""
}

// originName names where a root join starts, for messages.
func (n *joinNode) originName() string {
	if n.explicit {
		return "the JoinTable " + n.alias
	}
	return n.fk.table.name
}

// owns reports whether a chain starting at root can be joined in s.
func (s *scope) owns(root *joinNode) bool {
	if !root.explicit {
		return root.fk.table == s.base
	}
	return s.explicitJoin(root) != nil
}

// explicitJoin returns the JoinOn of the JoinTable n (the same table under
// the same alias), or nil.
func (s *scope) explicitJoin(n *joinNode) *explicitJoin {
	for i, e := range s.explicit {
		if e.j.n != nil && e.j.n.alias == n.alias && e.j.n.t == n.t {
			return &s.explicit[i]
		}
	}
	return nil
}

// register adds a foreign-key join (and the joins it hangs off) once, and
// returns its quoted alias.
func (s *scope) register(n *joinNode) (string, error) {
	if s.noJoins {
		return "", fmt.Errorf("%q is joined in a statement that cannot join: joins need a Select", n.alias)
	}
	if n.explicit {
		return quoteIdent(n.alias)
	}
	if n.parent != nil {
		if _, err := s.register(n.parent); err != nil {
			return "", err
		}
	}
	q, err := quoteIdent(n.alias)
	if err != nil {
		return "", err
	}
	if len(n.alias) > 63 {
		return "", fmt.Errorf("join alias %q is longer than PostgreSQL's 63 bytes: a chain of joins that long needs JoinTable and JoinOn", n.alias)
	}
	for _, o := range s.joins {
		if o.alias == n.alias {
			return q, nil
		}
	}
	s.joins = append(s.joins, n)
	return q, nil
}

// writeFrom writes FROM with the explicit joins, then the foreign-key
// joins, each once.
func (s *scope) writeFrom(r *renderer) {
	r.write(" FROM ", s.base.quoted)
	for _, e := range s.explicit {
		if e.j.err != nil {
			r.fail(e.j.err)
			return
		}
		if e.j.n == nil || !e.j.n.explicit {
			r.fail(errors.New("JoinOn takes a JoinTable"))
			return
		}
		alias, _ := quoteIdent(e.j.n.alias) // checked by JoinTable
		r.write(joinKind(e.left), e.j.n.t.quoted, " AS ", alias, " ON ")
		s.inOn, s.noAggregates = true, "a join condition"
		renderExpr(r, boolExpr{"AND", e.on}, false)
		s.inOn, s.noAggregates = false, ""
	}
	for i := 0; i < len(s.joins); i++ {
		n := s.joins[i]
		alias, _ := quoteIdent(n.alias) // checked by register
		from := s.base.quoted
		if n.parent != nil {
			from, _ = quoteIdent(n.parent.alias)
		}
		left := n.left
		if e := s.explicitJoin(n.root()); n.root().explicit && e != nil {
			left = left || e.left
		}
		r.write(joinKind(left), n.t.quoted, " AS ", alias, " ON ", alias, ".", n.ref.quoted, " = ", from, ".", n.fk.quoted)
	}
}

// joinKind is the keyword of an inner or left join.
func joinKind(left bool) string {
	if left {
		return " LEFT JOIN "
	}
	return " JOIN "
}
