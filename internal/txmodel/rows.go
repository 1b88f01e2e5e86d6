package txmodel

import (
	"fmt"
	"maps"
	"slices"
)

// Rule 13, the Querier's rows: rows from Querier.Query hold the
// connection they were read from until they are closed (Close, or Next
// returning false). Inside a transaction, while they are open, a
// statement, FETCH or CLOSE through that transaction from the goroutine
// reading them returns ErrConnBusy, sending nothing, before the
// transaction's state is looked at (rule 2 follows once they are closed);
// queuing a SAVEPOINT or a hook, and opening a block, need no connection
// and work. A block of the transaction whose end needs the connection
// (the root; a savepoint block whose SAVEPOINT, or that of a block inside
// it, was sent) closes them first when it ends from that goroutine
// (Commit, Rollback, a closure returning); reading them afterwards gives
// no rows and no error. Other blocks (joined ones, savepoint blocks never
// sent) end without touching them: a loop over the rows goes on. Outside
// a transaction they hold a pooled connection of their own and change
// nothing else.

// rowset is a Querier's open pgx.Rows, its first row read.
type rowset struct {
	c      *conn // the transaction's connection they hold; nil outside one
	rest   []int // rows not read yet
	closed bool
}

// openRows is Querier.Query of the program's rows, in order, and a first
// Next: it returns the first row (row 0 is always there).
func (m *model) openRows(ref int, c *ctxNode) (Class, string) {
	rs := &rowset{}
	if c.h == nil {
		if e := c.err(); e != 0 {
			return e, ""
		}
		rs.rest = slices.Sorted(maps.Keys(m.committed))
	} else {
		e := m.send(c.h, c, false, func(cn *conn) Class {
			if cn.aborted {
				return InFailedTx
			}
			seen := maps.Clone(m.committed)
			for row := range cn.rows {
				seen[row] = true
			}
			rs.rest = slices.Sorted(maps.Keys(seen))
			return OK
		})
		if e != OK {
			return e, ""
		}
		rs.c = c.h.c
		rs.c.held = rs
	}
	m.rowsets[ref] = rs
	first := rs.rest[:1]
	rs.rest = rs.rest[1:]
	return OK, fmt.Sprint(first)
}

// readRows reads rs to its end, which closes it.
func (m *model) readRows(rs *rowset) string {
	rest := rs.rest
	if rs.closed {
		rest = nil
	}
	closeRows(rs)
	return fmt.Sprint(append([]int{}, rest...))
}

// closeRows closes rs, giving its connection back: idempotent.
func closeRows(rs *rowset) {
	rs.closed = true
	rs.rest = nil
	if rs.c != nil && rs.c.held == rs {
		rs.c.held = nil
	}
}
