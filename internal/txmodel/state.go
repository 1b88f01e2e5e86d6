package txmodel

import (
	"slices"
	"strconv"
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

// handle is a PostgresTransaction: a block (terms of txend.go).
type handle struct {
	kind   hkind
	parent *handle
	c      *conn
	state  status
	// rbOnly: this root or savepoint block can only roll back (a joined
	// block of it failed or was left open, a block inside could not be
	// rolled back, its own SAVEPOINT was refused).
	rbOnly bool
	// endedBy: an enclosing block's end ended this one (rule 3).
	endedBy bool
	// refused: the server refused this savepoint block's SAVEPOINT, the
	// transaction being aborted (rule 12): its savepoint never existed.
	refused    bool
	sp         string // savepointBlock: its savepoint's name on the server
	onCommit   []int
	onRollback []int
}

// conn is the server side of one root, and the bookkeeping its blocks
// share.
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
	dead    bool      // the server ended the session under the begun transaction (rule 14)
	open    []*handle // the nested blocks opened so far, in order
	held    *rowset   // a Querier's open rows reading from it (rule 13)
}

func newConn() *conn {
	return &conn{rows: map[int]int{}, cursors: map[int]int{}}
}

// active reports whether h and every enclosing block are unfinished.
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

// rollbackOnly reports whether h's unit or an enclosing one can only roll
// back.
func (h *handle) rollbackOnly() bool {
	for x := h; x != nil; x = x.parent {
		if x.rbOnly {
			return true
		}
	}
	return false
}

// usable: statements may run through h as far as its state goes (rule 2),
// which is what TransactionExists says.
func (h *handle) usable() bool {
	return h != nil && h.active() && !h.rollbackOnly()
}

// top is the innermost open savepoint block, nil when only the root is
// open: savepoint blocks form a stack.
func (c *conn) top() *handle {
	for i := len(c.open) - 1; i >= 0; i-- {
		if x := c.open[i]; x.kind == savepointBlock && x.state == active {
			return x
		}
	}
	return nil
}

// outsideTop reports whether h is neither top nor inside it (rule 2: a
// statement through h would land inside top's savepoint, and top's
// rollback would undo it).
func (h *handle) outsideTop() bool {
	top := h.c.top()
	for x := h; x != nil; x = x.parent {
		if x == top {
			return false
		}
	}
	return top != nil
}

// openInside returns the open blocks nested in h, innermost first.
func (h *handle) openInside() []*handle {
	var in []*handle
	for i := len(h.c.open) - 1; i >= 0; i-- {
		x := h.c.open[i]
		for p := x.parent; x.state == active && p != nil; p = p.parent {
			if p == h {
				in = append(in, x)
				break
			}
		}
	}
	return in
}

// flush sends pending SAVEPOINTs before a statement; in an aborted
// transaction the server refuses them and they are gone (rule 12): a
// savepoint block whose SAVEPOINT it refused is refused, and rollback-only.
func (c *conn) flush() Class {
	c.begun = true
	if len(c.pending) == 0 {
		return 0
	}
	if c.aborted {
		for _, x := range c.open {
			if x.kind == savepointBlock && x.state == active && slices.Contains(c.pending, x.sp) {
				x.refused, x.rbOnly = true, true
			}
		}
		c.pending = nil
		return InFailedTx
	}
	c.stack = append(c.stack, c.pending...)
	c.pending = nil
	return 0
}

// sent reports whether savepoint block h's SAVEPOINT reached the server
// and created its savepoint: a refused one did not (rule 12).
func (c *conn) sent(h *handle) bool {
	return !h.refused && slices.Index(c.pending, h.sp) < 0
}

// forget drops h's pending SAVEPOINT and every one queued after it: they
// belong inside h, whose end destroys them.
func (c *conn) forget(h *handle) {
	if i := slices.Index(c.pending, h.sp); i >= 0 {
		c.pending = c.pending[:i]
	} else {
		c.pending = nil
	}
}

// run runs statement k on the server.
func (c *conn) run(k Kind, row int) (Class, string) {
	switch {
	case c.aborted:
		return InFailedTx, ""
	case k == Insert:
		c.rows[row] = len(c.stack)
	case k == InsertDup:
		return c.fail(Unique), ""
	case k == DivZero:
		return c.fail(DivByZero), ""
	case k == CountCursors:
		return OK, strconv.Itoa(len(c.cursors))
	}
	return OK, ""
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
