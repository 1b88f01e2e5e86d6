package txmodel

import "strconv"

// This file is the model of the rules for ending blocks, numbered as at
// the top of txend.go.

// finish is Commit (commit true) or Rollback of h with ctx c.
func (m *model) finish(h *handle, commit bool, c *ctxNode) Class {
	if !h.active() {
		return TxDone // rule 7: Commit or Rollback of an ended block
	}
	if rs := h.c.held; rs != nil && needsConn(h) {
		closeRows(rs) // rule 13: an end that needs the connection closes the rows first
	}
	// Rule 10 cannot happen: a COMMIT or ROLLBACK sent as SQL is refused
	// (see statement).
	ctxErr := c.err() // rule 9: ending goes on whatever ctx says
	// Rule 3: the blocks still open inside end first, innermost first, as
	// rolled back.
	var hooks []int
	var outermost *handle // the outermost savepoint block inside
	for _, x := range h.openInside() {
		x.state, x.endedBy = rolledBack, true
		if x.kind == joined {
			x.unit().rbOnly = true
			continue
		}
		outermost = nil
		if h.c.sent(x) {
			outermost = x
		}
		h.c.forget(x) // its pending SAVEPOINT, and those queued inside it
		hooks = append(hooks, x.onRollback...)
	}
	if commit && outermost != nil {
		// h keeps its work: undo theirs (else h's own rollback does).
		h.c.undo(outermost)
	}
	var e Class
	var own []int
	prefix := "r"
	switch h.kind {
	case root:
		e, own = m.endRoot(h, commit, ctxErr)
		if h.state == committed {
			prefix = "c"
		}
	case savepointBlock:
		e, own = m.endSavepoint(h, commit, ctxErr)
	default:
		e = endJoined(h, commit)
	}
	// Rule 11: hooks run after the end, with a ctx that has not ended,
	// carrying the ended block's parent.
	m.runHooks(hooks, "r", h.parent)
	m.runHooks(own, prefix, h.parent)
	return e
}

// needsConn reports whether ending h needs its connection: h is the root,
// or h or a savepoint block open inside it sent its SAVEPOINT. A joined
// block, and a savepoint block whose SAVEPOINT (and those of the blocks
// inside it) is still queued, end without it.
func needsConn(h *handle) bool {
	if h.kind == root || h.kind == savepointBlock && h.c.sent(h) {
		return true
	}
	for _, x := range h.openInside() {
		if x.kind == savepointBlock && h.c.sent(x) {
			return true
		}
	}
	return false
}

// rolledBackErr is what a Commit that rolled back, or a Rollback, returns.
func rolledBackErr(commit bool, ctxErr Class) Class {
	if !commit {
		return OK // rule 9: the rollback runs with a cleanup context
	}
	return CommitRolledBack | ctxErr
}

// endRoot is rule 4 (Commit) and rule 7 (Rollback) for the root: the
// outcome and the hooks it runs.
func (m *model) endRoot(h *handle, commit bool, ctxErr Class) (Class, []int) {
	defer clear(h.c.cursors)
	if h.c.dead { // rule 14: the server rolled back when it ended the session
		h.state = rolledBack
		if !commit {
			return AnyErr, h.onRollback // ROLLBACK on the dead connection fails
		}
		return CommitRolledBack | ctxErr, h.onRollback
	}
	if commit && !h.rbOnly && ctxErr == 0 && !h.c.aborted {
		for row := range h.c.rows {
			m.committed[row] = true
		}
		h.state = committed
		return OK, h.onCommit
	}
	h.state = rolledBack
	return rolledBackErr(commit, ctxErr), h.onRollback
}

// endSavepoint is rule 5 (Commit) and rule 7 (Rollback) for a savepoint
// block: the outcome and the hooks it runs now.
func (m *model) endSavepoint(h *handle, commit bool, ctxErr Class) (Class, []int) {
	c := h.c
	keep := commit && !h.rbOnly && ctxErr == 0
	sent := c.sent(h)
	c.forget(h) // what was queued inside goes with it
	switch {
	case !sent && keep: // nothing inside reached the server (a refused block is rollback-only)
		handOver(h)
		return OK, nil
	case !sent:
		h.state = rolledBack
		return rolledBackErr(commit, ctxErr), h.onRollback
	case keep && !c.aborted && c.release(h.sp) == OK:
		handOver(h)
		return OK, nil
	}
	h.state = rolledBack
	if !c.undo(h) {
		if commit {
			return CommitRolledBack, h.onRollback
		}
		return NoSavepoint, h.onRollback
	}
	return rolledBackErr(commit, ctxErr), h.onRollback
}

// undo is ROLLBACK TO and RELEASE of savepoint block s's savepoint. When
// ROLLBACK TO fails (its savepoint was destroyed by hand), the enclosing
// unit becomes rollback-only, so s's work is never committed (rule 7).
func (c *conn) undo(s *handle) bool {
	if c.rollbackTo(s.sp) != OK {
		s.parent.unit().rbOnly = true
		return false
	}
	c.truncate(len(c.stack)-1, false)
	return true
}

// handOver ends a savepoint block as released: its hooks move to its
// parent's unit and run on that unit's outcome (rule 5).
func handOver(h *handle) {
	h.state = committed
	to := h.parent.unit()
	to.onCommit = append(to.onCommit, h.onCommit...)
	to.onRollback = append(to.onRollback, h.onRollback...)
	h.onCommit, h.onRollback = nil, nil
}

// endJoined is rule 6 (Commit) and rule 7 (Rollback) for a joined block:
// no I/O; its unit decides.
func endJoined(h *handle, commit bool) Class {
	switch {
	case !commit:
		h.state = rolledBack
		h.unit().rbOnly = true
		return OK
	case h.rollbackOnly():
		h.state = rolledBack
		return CommitRolledBack
	}
	h.state = committed
	return OK
}

// addHook is OnCommit or OnRollback on h: on its unit, or, once that has
// ended, run at once or dropped as the outcome says (rule 11).
func (m *model) addHook(h *handle, id int, onCommit bool) {
	u := h.unit()
	for u.state == committed && u.parent != nil { // a released block handed its hooks up
		u = u.parent.unit()
	}
	switch {
	case u.state == active && onCommit:
		u.onCommit = append(u.onCommit, id)
	case u.state == active:
		u.onRollback = append(u.onRollback, id)
	case u.state == committed && onCommit:
		m.runHooks([]int{id}, "c", u.parent)
	case u.state == rolledBack && !onCommit:
		m.runHooks([]int{id}, "r", u.parent)
	}
}

// runHooks runs hooks: each records its name ("c" or "r", then its
// number); a hook with a row inserts it with the ctx it got, which has not
// ended and carries the handle carrying, and records "!" after its name
// when that fails.
func (m *model) runHooks(ids []int, prefix string, carrying *handle) {
	for _, id := range ids {
		name := prefix + strconv.Itoa(id)
		if row, ok := m.hookRows[id]; ok {
			if e, _ := m.statement(Insert, row, &ctxNode{h: carrying}); e != OK {
				name += "!"
			}
		}
		m.hooks = append(m.hooks, name)
	}
}
