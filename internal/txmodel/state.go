package txmodel

import (
	"slices"
)

type status uint8

const (
	active status = iota
	committed
	rolledBack
)

type hkind uint8

const (
	root hkind = iota
	joined
	savepointBlock
)

// handle is a PostgresTransaction: an outermost transaction, a joined
// block or a savepoint block.
type handle struct {
	kind   hkind
	parent *handle
	c      *conn
	state  status
	// rbOnly: a joined block of this unit failed; it can only roll back.
	rbOnly     bool
	sp         string // savepointBlock: its savepoint's name on the server
	onCommit   []int
	onRollback []int
}

// conn is the server side of one outermost transaction.
type conn struct {
	begun   bool
	pending []string // SAVEPOINTs not sent yet, oldest first
	stack   []string // the server's savepoints, oldest first
	// rows and cursors map to the depth (savepoints on the stack) at which
	// they were made: ROLLBACK TO the savepoint at position p undoes those
	// at depth >= p; RELEASE of it moves them to depth p-1.
	rows    map[int]int
	cursors map[int]int
	aborted bool      // a statement failed: the server refuses all but ROLLBACK (TO)
	blocks  []*handle // open savepoint blocks, innermost last
}

func newConn() *conn {
	return &conn{rows: map[int]int{}, cursors: map[int]int{}}
}

// active reports whether h and every enclosing handle are unfinished.
func (h *handle) active() bool {
	for x := h; x != nil; x = x.parent {
		if x.state != active {
			return false
		}
	}
	return true
}

// unit is the block whose fate h shares: itself unless it joined.
func (h *handle) unit() *handle {
	x := h
	for x.kind == joined {
		x = x.parent
	}
	return x
}

// rollbackOnly reports whether h or an enclosing block can only roll back.
func (h *handle) rollbackOnly() bool {
	for x := h; x != nil; x = x.parent {
		if x.rbOnly {
			return true
		}
	}
	return false
}

// usable: statements can run through h (TransactionExists).
func (h *handle) usable() bool { return h != nil && h.active() && !h.rollbackOnly() }

// gone reports whether the work h can see has ended: its transaction
// ended or a savepoint block around it rolled back. (A block that merely
// finished leaves its work, and its cursors, to the enclosing one.)
func (h *handle) gone() bool {
	for x := h; x != nil; x = x.parent {
		if x.kind == savepointBlock && x.state == rolledBack || x.kind == root && x.state != active {
			return true
		}
	}
	return false
}

// crossesBlock reports whether running through h would put work inside a
// savepoint block that h is not part of: the innermost open savepoint block
// is not h nor around it. That work would be undone by that block's
// rollback, which it is not part of (stack discipline).
func (h *handle) crossesBlock() bool {
	c := h.c
	if len(c.blocks) == 0 {
		return false
	}
	inner := c.blocks[len(c.blocks)-1]
	for x := h; x != nil; x = x.parent {
		if x == inner {
			return false
		}
	}
	return true
}

// flush sends pending SAVEPOINTs before a statement; in an aborted
// transaction the server refuses them and they are gone.
func (c *conn) flush() Class {
	c.begun = true
	if len(c.pending) == 0 {
		return 0
	}
	if c.aborted {
		c.pending = nil
		return InFailedTx
	}
	c.stack = append(c.stack, c.pending...)
	c.pending = nil
	return 0
}

// fail is a statement failing on the server: the transaction is aborted.
func (c *conn) fail(class Class) Class {
	c.aborted = true
	return class
}

// rollbackTo is ROLLBACK TO SAVEPOINT name: the newest savepoint of that
// name stays, everything after it is undone.
func (c *conn) rollbackTo(name string) Class {
	i := lastIndex(c.stack, name)
	if i < 0 {
		return c.fail(NoSavepoint)
	}
	c.truncate(i+1, true)
	c.aborted = false
	return OK
}

// release is RELEASE SAVEPOINT name: it and every savepoint after it are
// forgotten, their work kept.
func (c *conn) release(name string) Class {
	if c.aborted {
		return InFailedTx
	}
	i := lastIndex(c.stack, name)
	if i < 0 {
		return c.fail(NoSavepoint)
	}
	c.truncate(i, false)
	return OK
}

// truncate keeps the first n savepoints; work made deeper is undone, or
// kept at depth n.
func (c *conn) truncate(n int, undo bool) {
	for _, m := range []map[int]int{c.rows, c.cursors} {
		for k, d := range m {
			switch {
			case d < n:
			case undo:
				delete(m, k)
			default:
				m[k] = n
			}
		}
	}
	c.stack = c.stack[:n]
}

func lastIndex(s []string, name string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == name {
			return i
		}
	}
	return -1
}

// removeBlock forgets an open savepoint block.
func (c *conn) removeBlock(h *handle) {
	c.blocks = slices.DeleteFunc(c.blocks, func(x *handle) bool { return x == h })
}

// ctxNode is a context: the handle it carries, and whether it ended.
type ctxNode struct {
	parent   *ctxNode
	h        *handle
	canceled bool
	expired  bool
}

// err returns the classes of ctx.Err(), 0 while the ctx lives.
func (x *ctxNode) err() Class {
	var c Class
	for n := x; n != nil; n = n.parent {
		if n.canceled {
			c |= Canceled
		}
		if n.expired {
			c |= Deadline
		}
	}
	return c
}
