package txmodel

import (
	"fmt"
	"maps"
	"slices"
)

// batch is a *Batch.
type batch struct {
	own       *handle // the batch's own transaction, outside the caller's
	h         *handle // the handle it was opened through
	cursor    int
	rows      []int // rows not fetched yet
	closed    bool
	exhausted bool
}

// atomic runs Atomic().Add(items...).Run(c): a joined Transaction whose
// failure names the item. A query that controls the transaction is
// refused before any I/O; a Runner's statement, when the Runner runs it.
func (m *model) atomic(items []Item, c *ctxNode) (Class, int) {
	for i, it := range items { // checked before any I/O
		if !it.Runner && (it.Kind == SQLCommit || it.Kind == SQLRollback) {
			return TxControl, i
		}
	}
	h, e := m.open(NestJoin, c)
	if h == nil {
		return e, -1
	}
	inner := &ctxNode{parent: c, h: h}
	for i, it := range items {
		if e, _ := m.statement(it.Kind, it.Row, inner); e != OK {
			m.finish(h, false, inner)
			return e, i
		}
	}
	return m.finish(h, true, inner), -1
}

func (m *model) openBatch(ref int, c *ctxNode) Class {
	b := &batch{h: c.h}
	if c.h == nil { // a read transaction of its own
		if e := c.err(); e != 0 {
			return e
		}
		b.own = &handle{kind: root, c: newConn()}
		b.rows = slices.Sorted(maps.Keys(m.committed))
		m.batches[ref] = b
		return OK
	}
	e := m.send(c.h, c, false, func(cn *conn) Class {
		if cn.aborted {
			return InFailedTx
		}
		m.cursors++
		b.cursor = m.cursors
		cn.cursors[b.cursor] = len(cn.stack)
		seen := maps.Clone(m.committed)
		for row := range cn.rows {
			seen[row] = true
		}
		b.rows = slices.Sorted(maps.Keys(seen))
		return OK
	})
	if e == OK {
		m.batches[ref] = b
	}
	return e
}

// holder is the block a batch's cursor lives in now, nil once it is gone.
// The cursor outlives a released savepoint block, and a finished joined
// one, in the enclosing block; it goes with a rolled-back savepoint block
// (ROLLBACK TO closes it) and with the transaction.
func holder(b *batch) *handle {
	if b.own != nil {
		return b.own
	}
	x := b.h
	for x.state == committed && x.parent != nil {
		x = x.parent
	}
	if x.state != active {
		return nil
	}
	return x
}

// next is Batch.Next: at most BatchSize rows; fewer means the end, which
// closes the batch; an error closes it too.
func (m *model) next(b *batch, c *ctxNode) (Class, string) {
	if b.closed {
		if b.exhausted {
			return OK, "[]"
		}
		return BatchClosed, ""
	}
	x := holder(b)
	if x == nil {
		b.closed = true
		return TxDone, ""
	}
	e := m.send(x, c, true, func(cn *conn) Class {
		if cn.aborted {
			return InFailedTx
		}
		if _, ok := cn.cursors[b.cursor]; !ok && b.own == nil {
			return cn.fail(NoCursor) // rolled back to a savepoint made before it
		}
		return OK
	})
	if e != OK {
		b.closed = true
		m.closeCursor(b, &ctxNode{}) // with a cleanup context
		return e, ""
	}
	n := min(BatchSize, len(b.rows))
	rows := b.rows[:n]
	b.rows = b.rows[n:]
	if n < BatchSize {
		b.closed, b.exhausted = true, true
		m.closeCursor(b, c)
	}
	return OK, fmt.Sprint(rows)
}

// closeBatch is Batch.Close: idempotent.
func (m *model) closeBatch(b *batch, c *ctxNode) Class {
	if b.closed {
		return OK
	}
	b.closed = true
	return m.closeCursor(b, c)
}

// closeCursor ends the batch's own transaction (Commit), or closes its
// cursor in the caller's transaction with a cleanup context, unless that
// cannot run statements: then the cursor is gone, or goes with the
// transaction's rollback.
func (m *model) closeCursor(b *batch, c *ctxNode) Class {
	if b.own != nil {
		b.own.state = committed
		if e := c.err(); e != 0 {
			return CommitRolledBack | e
		}
		return OK
	}
	x := holder(b)
	if x == nil {
		return OK
	}
	cn := x.c
	if cn.held != nil {
		// Rule 13, before the transaction's state is looked at: the
		// cursor stays open until the transaction ends.
		return Busy
	}
	if !x.usable() {
		return OK
	}
	if e := cn.flush(); e != 0 {
		return e
	}
	if cn.aborted {
		return OK
	}
	if _, ok := cn.cursors[b.cursor]; !ok {
		return cn.fail(NoCursor)
	}
	delete(cn.cursors, b.cursor)
	return OK
}
