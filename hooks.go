package piccolo

import "context"

// Hooks: what runs after a block ends, on a known outcome only (rule 11
// in txend.go).

// OnCommit registers fn to run after the outermost transaction commits,
// with a context that no longer carries the transaction (fn may run
// queries of its own). Hooks of a joined block wait for the outermost
// transaction; hooks of a savepoint block that rolls back are dropped.
// Registered on a transaction that has already committed, fn runs at once;
// on one that rolled back, it is dropped.
//
// Hooks run only on a known outcome. After ErrAmbiguousCommit (the
// connection died after COMMIT was sent) neither OnCommit nor OnRollback
// hooks run, nor do hooks registered later; nor after a COMMIT or ROLLBACK
// sent as SQL. The caller must then find out what happened, for example by
// looking for a row the transaction wrote, and act on that.
//
// Hooks run with the context passed to the Commit or Rollback that ended
// the block, stripped of its cancellation and deadline
// (context.WithoutCancel: its values are kept), so that a hook can run
// queries even when that context has ended; a hook that must be bounded
// sets a deadline of its own. A hook run at once on registration gets
// context.Background carrying the ended block's parent transaction, like
// hooks registered before the end: its queries run in that parent and share
// its fate.
//
// OnCommit needs no connection: it may be called from anywhere, a scan
// callback included.
func (t *PostgresTransaction) OnCommit(fn func(ctx context.Context)) {
	if fn == nil {
		return
	}
	if u := t.addHook(fn, true); u != nil && txState(u.state.Load()) == txCommitted {
		fn(t.hookContext(context.Background(), u))
	}
}

// OnRollback registers fn to run after the outermost transaction rolls back:
// by Rollback, by an error or panic in its closure, or by a Commit that
// PostgreSQL turned into a rollback (ErrCommitRolledBack). When a savepoint
// block rolls back, its OnRollback hooks run right away: that block's work
// is gone. Registered on a transaction that has already rolled back, fn
// runs at once; on one that committed, it is dropped. After
// ErrAmbiguousCommit no hook runs: see OnCommit. The hooks of a block that
// was still open when an enclosing block ended run then: that end rolled
// the block back. Hooks get a context that cannot be cancelled: see
// OnCommit.
func (t *PostgresTransaction) OnRollback(fn func(ctx context.Context)) {
	if fn == nil {
		return
	}
	if u := t.addHook(fn, false); u != nil && txState(u.state.Load()) == txRolledBack {
		fn(t.hookContext(context.Background(), u))
	}
}

// addHook appends fn to the hooks of the block that decides t's fate. When
// that block has finished, it returns the block instead, for the caller to
// run or drop fn outside the lock.
func (t *PostgresTransaction) addHook(fn func(context.Context), onCommit bool) (finished *PostgresTransaction) {
	t.c.hookMu.Lock()
	defer t.c.hookMu.Unlock()
	u := t.unit()
	// A released savepoint block handed its hooks to its parent.
	for txState(u.state.Load()) == txCommitted && u.parent != nil {
		u = u.parent.unit()
	}
	if txState(u.state.Load()) != txActive {
		return u
	}
	if onCommit {
		u.hooks.onCommit = append(u.hooks.onCommit, fn)
	} else {
		u.hooks.onRollback = append(u.hooks.onRollback, fn)
	}
	return nil
}

// hookContext is the context hooks of the finished block u run with: ctx
// without its cancellation, carrying u's parent or no transaction of the
// engine, so that queries the hooks run fail neither with
// ErrTransactionDone nor because the caller's context ended.
func (t *PostgresTransaction) hookContext(ctx context.Context, u *PostgresTransaction) context.Context {
	return t.c.engine.withTx(context.WithoutCancel(ctx), u.parent)
}

// hookList holds a block's OnCommit and OnRollback hooks.
type hookList struct {
	onCommit, onRollback []func(context.Context)
}

// Ending a block stores its state first and then takes or moves its hooks:
// addHook reads the state under hookMu, so a hook registered while the
// block ends is either taken with the others or sees the block finished.

// takeHooks returns the hooks of t's outcome (none when it is unknown) and
// forgets them all. t's state is already stored.
func (t *PostgresTransaction) takeHooks(outcome txState) []func(context.Context) {
	t.c.hookMu.Lock()
	defer t.c.hookMu.Unlock()
	h := t.hooks
	t.hooks = hookList{}
	switch outcome {
	case txCommitted:
		return h.onCommit
	case txRolledBack:
		return h.onRollback
	}
	return nil
}

// moveHooks hands t's hooks to the block to, when t released its
// savepoint and to decides their fate now. t's state is already stored.
func (t *PostgresTransaction) moveHooks(to *PostgresTransaction) {
	t.c.hookMu.Lock()
	defer t.c.hookMu.Unlock()
	to.hooks.onCommit = append(to.hooks.onCommit, t.hooks.onCommit...)
	to.hooks.onRollback = append(to.hooks.onRollback, t.hooks.onRollback...)
	t.hooks = hookList{}
}
