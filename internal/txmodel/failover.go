package txmodel

// This file is the model of rule 14 (txend.go): a transaction whose
// connection is lost before COMMIT was sent, under Retry with
// FailoverBudget.

// kill is the Kill operation through h, at path: the first time it runs,
// the server ends the session of h's connection. A transaction that has
// begun is rolled back by the server: what it wrote is gone, its
// statements fail from then on, and its end reports a rollback. One that
// has not begun loses nothing: the engine replaces a session that ended
// before BEGIN (see replaceEnded), so the kill changes nothing the program
// sees.
func (m *model) kill(h *handle, path string) {
	if m.killed[path] {
		return
	}
	m.killed[path] = true
	if !h.active() || !h.c.begun {
		return
	}
	h.c.dead = true
	clear(h.c.rows)
	clear(h.c.cursors)
}

// rerun reports whether Transaction runs the closure of op again after a
// run whose root h ended with e (rule 14): with Retry, when the closure
// returned nil and the Commit found the connection lost before COMMIT was
// sent, the server having rolled back. An error or panic of the closure is
// the closure's own and comes back; a failure after COMMIT was sent
// (ErrAmbiguousCommit) is never re-run, though the model's programs have
// none (a Kill comes before COMMIT).
func rerun(op Op, h *handle, e Class) bool {
	return op.Retry && h.kind == root && h.c.dead && op.End == ReturnNil && e&CommitRolledBack != 0
}
