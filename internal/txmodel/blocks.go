package txmodel

import (
	"fmt"
	"maps"
	"slices"
)

// open starts a block through ctx c: Transaction's and Begin's common
// part. It returns nil and the error when no block starts.
func (m *model) open(mode Nest, c *ctxNode) (*handle, Class) {
	if e := c.err(); e != 0 {
		return nil, e
	}
	parent := c.h
	if parent == nil {
		return &handle{kind: root, c: newConn()}, OK
	}
	if mode == NestRefuse {
		return nil, Nested
	}
	if !parent.usable() {
		return nil, TxDone
	}
	h := &handle{kind: joined, parent: parent, c: parent.c}
	if mode == NestSavepoint {
		if parent.crossesBlock() {
			return nil, Nested // a sibling savepoint block is open
		}
		m.generated++
		h.kind, h.sp = savepointBlock, fmt.Sprintf("nested %d", m.generated)
		h.c.pending = append(h.c.pending, h.sp)
		h.c.blocks = append(h.c.blocks, h)
	}
	return h, OK
}

// block runs a Tx or Begin operation and its body.
func (m *model) block(op Op, c *ctxNode, f *frame, path string) {
	h, e := m.open(op.Mode, c)
	inner := &ctxNode{parent: c, h: h}
	if op.Kind == Begin {
		seen := inner // the ctx Begin returned: c itself when it failed
		if h == nil {
			seen = c
		}
		m.record(Result{Path: path, Op: Begin, Err: e, Atomic: -1}, h, seen)
	}
	if h == nil {
		if op.Kind == Tx {
			m.record(Result{Path: path, Op: Tx, Err: e, Atomic: -1}, nil, c)
		}
		return
	}
	m.ops(op.Body, &frame{ctx: inner, outer: f}, path+".")
	if op.Kind == Begin {
		e = m.finish(h, op.End == CommitEnd, inner)
		m.record(Result{Path: path + ".end", Op: Begin, Err: e, Atomic: -1}, h, inner)
		return
	}
	switch op.End {
	case ReturnNil:
		if h.active() {
			e = m.finish(h, true, inner)
		}
	case ReturnErr, Panic:
		if h.active() {
			m.finish(h, false, inner)
		}
		e = Boom
		if op.End == Panic {
			e = Panicked
		}
	}
	m.record(Result{Path: path, Op: Tx, Err: e, Atomic: -1}, h, c)
}

// finish is Commit (commit true) or Rollback of h with ctx c.
func (m *model) finish(h *handle, commit bool, c *ctxNode) Class {
	if !h.active() {
		return TxDone
	}
	ctxErr := c.err()
	switch h.kind {
	case joined:
		// The outermost transaction decides; a failed joined block makes
		// the block it joined rollback-only.
		h.state = committed
		if !commit {
			h.state = rolledBack
			h.unit().rbOnly = true
		}
		return OK
	case savepointBlock:
		return m.endSavepoint(h, commit, ctxErr)
	}
	return m.endRoot(h, commit, ctxErr)
}

// rolledBackErr is what a Commit that rolled back, or a Rollback, returns.
func rolledBackErr(commit bool, ctxErr Class) Class {
	if !commit {
		return OK | ctxErr // ending uses a cleanup context
	}
	return CommitRolledBack | ctxErr
}

// endSavepoint releases or rolls back a savepoint block. A block whose ctx
// ended before it did rolls back (its end still reaches the server).
func (m *model) endSavepoint(h *handle, commit bool, ctxErr Class) Class {
	c := h.c
	c.removeBlock(h)
	keep := commit && ctxErr == 0 && !h.rbOnly
	if i := slices.Index(c.pending, h.sp); i >= 0 && m.dev.SavepointEndStopsAtFailedFlush && c.aborted && i < len(c.pending)-1 {
		c.pending = nil
		m.rolledBack(h)
		return InFailedTx | ctxErr
	} else if i >= 0 {
		// Its SAVEPOINT was never sent: nothing ran inside.
		last := i == len(c.pending)-1
		if !last {
			// The engine sends them (BEGIN too) before undoing them; only
			// the deviations that depend on BEGIN see the difference.
			c.begun = true
		}
		c.pending = c.pending[:i]
		if keep || m.dev.EmptyBlockCommitsOnEndedCtx && last && commit && !h.rbOnly {
			m.released(h)
			return OK
		}
		m.rolledBack(h)
		return rolledBackErr(commit, ctxErr)
	}
	if ctxErr != 0 && m.dev.SavepointEndOnEndedCtxKeepsWork && (len(c.pending) > 0 || commit && !h.rbOnly && !c.aborted) {
		c.pending = nil
		m.rolledBack(h)
		return ctxErr
	}
	if len(c.pending) > 0 { // savepoints made inside, never used
		if e := c.flush(); e != 0 && m.dev.SavepointEndStopsAtFailedFlush {
			m.rolledBack(h)
			return e
		}
	}
	if keep && !c.aborted {
		if e := c.release(h.sp); e == OK {
			m.released(h)
			return OK
		}
		// Its savepoint was destroyed by hand: roll back, as far as possible.
	}
	m.rolledBack(h)
	if c.rollbackTo(h.sp) != OK {
		// It cannot be rolled back: neither can anything of the enclosing
		// transaction be committed.
		h.parent.unit().rbOnly = true
		return AnyErr
	}
	c.truncate(len(c.stack)-1, false)
	return rolledBackErr(commit, ctxErr)
}

// released hands a released block's hooks to the enclosing block.
func (m *model) released(h *handle) {
	h.state = committed
	to := h.parent.unit()
	to.onCommit = append(to.onCommit, h.onCommit...)
	to.onRollback = append(to.onRollback, h.onRollback...)
	h.onCommit, h.onRollback = nil, nil
}

// rolledBack ends a savepoint block that rolled back: its OnRollback hooks
// run now, its OnCommit hooks are dropped.
func (m *model) rolledBack(h *handle) {
	h.state = rolledBack
	m.runHooks(h.onRollback, false)
}

// endRoot sends COMMIT or ROLLBACK; a ctx that ended rolls back.
func (m *model) endRoot(h *handle, commit bool, ctxErr Class) Class {
	c := h.c
	defer clear(c.cursors)
	if commit && !c.begun && m.dev.EmptyBlockCommitsOnEndedCtx {
		ctxErr = 0
	}
	if commit && ctxErr == 0 && !h.rbOnly && !c.aborted {
		for row := range c.rows {
			m.committed[row] = true
		}
		h.state = committed
		m.runHooks(h.onCommit, true)
		return OK
	}
	h.state = rolledBack
	m.runHooks(h.onRollback, false)
	return rolledBackErr(commit, ctxErr)
}

// atomic runs Atomic().Add(items...).Run(c): a joined Transaction whose
// failure names the item.
func (m *model) atomic(items []Item, c *ctxNode) (Class, int) {
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
		b.h = b.own
		b.rows = slices.Sorted(maps.Keys(m.committed))
		m.batches[ref] = b
		return OK
	}
	e := m.send(c.h, c, viaStatement, func(cn *conn) Class {
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

// next is Batch.Next: at most BatchSize rows; fewer means the end, which
// closes the batch; an error closes it too.
func (m *model) next(b *batch, c *ctxNode) (Class, string) {
	if b.closed {
		if b.exhausted {
			return OK, "[]"
		}
		return BatchClosed, ""
	}
	if b.own == nil && (b.h.gone() || m.dev.BatchLeavesCursorOpen && !b.h.active()) {
		b.closed = true
		return TxDone | BatchClosed, "" // its cursor went with the work it belonged to
	}
	e := m.send(b.h, c, viaCursor, func(cn *conn) Class {
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
		if b.own != nil || !m.dev.BatchLeavesCursorOpen {
			m.release(b, &ctxNode{})
		}
		return e, ""
	}
	n := min(BatchSize, len(b.rows))
	rows := b.rows[:n]
	b.rows = b.rows[n:]
	if n < BatchSize {
		b.closed, b.exhausted = true, true
		m.release(b, c)
	}
	return OK, fmt.Sprint(rows)
}

// closeBatch is Batch.Close: idempotent.
func (m *model) closeBatch(b *batch, c *ctxNode) Class {
	if b.closed {
		return OK
	}
	b.closed = true
	return m.release(b, c)
}

// release closes the cursor, with a cleanup context (closing is never
// refused for an ended ctx), or ends the batch's own transaction.
func (m *model) release(b *batch, c *ctxNode) Class {
	if b.own != nil {
		if b.own.active() {
			b.own.state = committed
		}
		return OK | c.err()
	}
	if b.h.gone() || b.h.rollbackOnly() || m.dev.BatchLeavesCursorOpen && !b.h.active() {
		return OK
	}
	cn := b.h.c
	if e := cn.flush(); e != 0 {
		return e
	}
	if cn.aborted {
		return OK // its rollback removes the cursor
	}
	if _, ok := cn.cursors[b.cursor]; !ok {
		return cn.fail(NoCursor)
	}
	delete(cn.cursors, b.cursor)
	return OK | c.err()
}
