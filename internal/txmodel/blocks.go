package txmodel

import "fmt"

// open starts a block through ctx c (rule 1): Transaction's and Begin's
// common part. It returns nil and the error when no block starts.
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
		if top := h.c.top(); top != nil && parent.unit() != top {
			return nil, Nested // it would open beside top, not inside it
		}
		m.generated++
		h.kind, h.sp = savepointBlock, fmt.Sprintf("nested %d", m.generated)
		h.c.pending = append(h.c.pending, h.sp) // sent before the next statement
	}
	h.c.open = append(h.c.open, h)
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
	for {
		m.ops(op.Body, &frame{ctx: inner, outer: f}, path+".")
		if op.Kind == Begin {
			e = m.finish(h, op.End == CommitEnd, inner)
			m.record(Result{Path: path + ".end", Op: Begin, Err: e, Atomic: -1}, h, inner)
			return
		}
		e = m.endTx(op, h, inner)
		if !rerun(op, h, e) {
			break
		}
		h, _ = m.open(op.Mode, c) // a root again: it always opens
		inner = &ctxNode{parent: c, h: h}
	}
	m.record(Result{Path: path, Op: Tx, Err: e, Atomic: -1}, h, c)
}

// endTx ends h, the block a Tx closure ran in, as Transaction does when the
// closure ends as op says (rule 8), and returns what Transaction returns
// (before any re-run).
func (m *model) endTx(op Op, h *handle, inner *ctxNode) Class {
	switch {
	case op.End == ReturnNil && h.active():
		return m.finish(h, true, inner)
	case op.End == ReturnNil && h.endedBy: // an enclosing block's end rolled it back
		return TxDone
	case op.End == ReturnNil: // ended by hand
		return OK
	case op.End == ReturnErr:
		m.abort(h, inner)
		return Boom
	}
	m.abort(h, inner)
	return Panicked
}

// abort rolls h back after its closure failed, unless it has ended.
func (m *model) abort(h *handle, c *ctxNode) {
	if h.active() {
		m.finish(h, false, c)
	}
}
