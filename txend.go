package piccolo

import (
	"context"
	"errors"
	"fmt"
)

// The rules for ending blocks. They are the engine's promise, and what the
// reference model (internal/txmodel) checks. Every handle reports what the
// server did, or says that nobody knows; nothing is lost silently.
//
// Terms. A block is a handle from Begin or Transaction: the root (the
// outermost transaction: it owns BEGIN, COMMIT and the connection), a
// savepoint block (NestSavepoint: it owns a savepoint) or a joined block
// (NestJoin: it owns nothing). A block's unit is the block itself, or, for
// a joined block, its parent's unit: the unit decides a joined block's fate
// and holds its hooks. Savepoint blocks form a stack; top is the innermost
// open one, or the root when none is open.
//
//  1. Opening sends nothing (BEGIN and SAVEPOINT are queued and go out
//     with the next statement, in its pipeline when it can ride). A savepoint block opens only inside top,
//     else ErrNestedTransaction; nothing opens in a transaction that has
//     ended or is rollback-only (ErrTransactionDone).
//  2. A statement (Savepoint, RollbackTo and Release included) runs through
//     a block only when the block and every enclosing one are open, the
//     transaction is not rollback-only and no COMMIT or ROLLBACK sent as SQL
//     ended it, else ErrTransactionDone; and only when the block is top or
//     inside it, else ErrConnBusy (it would run inside top's savepoint and
//     top's rollback would undo it). Reading (FETCH) and closing a Batch is
//     exempt: ROLLBACK TO undoes neither. From a scan callback of the same
//     transaction: ErrConnBusy, and so for a Batch's Next, NextFunc and
//     Close from a callback of the batch's own transaction (its own
//     callback: TestBatchCallsFromItsOwnScanCallbackAreBusy, and the
//     model's BatchReenter). A refused statement sends nothing and keeps
//     the queued BEGIN and SAVEPOINTs.
//  3. Ending a block, by Commit or Rollback, whichever handle and goroutine
//     call it, first ends the blocks still open inside it, innermost first,
//     as rolled back: a savepoint block's work is undone on the server
//     (ROLLBACK TO its savepoint when the ending block keeps its work; the
//     ending block's own rollback otherwise) and its OnRollback hooks run;
//     a joined block makes its unit rollback-only, since half of it was
//     never committed. Each then reports RolledBack, its Commit and
//     Rollback return ErrTransactionDone, and a Transaction closure still
//     running in it returns ErrTransactionDone. So an outer handle's Commit
//     while an inner savepoint block is open (another goroutine's, or under
//     a captured outer context) rolls that block back and commits the rest.
//  4. Root Commit: COMMIT, when anything was sent. nil: Committed, OnCommit
//     hooks run. ErrCommitRolledBack, RolledBack, OnRollback hooks run: the
//     transaction was rollback-only (a joined block failed or was left
//     open, a savepoint block could not be rolled back), ctx had ended, a
//     statement had failed, PostgreSQL refused COMMIT, or the connection
//     died before COMMIT. ErrAmbiguousCommit: the connection died after
//     COMMIT was sent; neither Committed nor RolledBack, no hook runs.
//  5. Savepoint block Commit: RELEASE; Committed, and its hooks move to its
//     parent's unit and run on that unit's outcome. When no savepoint
//     statement ran by hand (RollbackTo, Release, SQL) since the block
//     opened, RELEASE cannot fail while the session lives: it is queued
//     and rides with the next statement, and the end of the transaction
//     or of an enclosing savepoint block makes it needless. It rolls back instead
//     (ErrCommitRolledBack, RolledBack, OnRollback hooks run at once) when
//     it is rollback-only, a statement inside failed, ctx had ended, or
//     RELEASE failed. A block whose SAVEPOINT was never sent ends without
//     I/O, with the same outcomes.
//  6. Joined block Commit: no I/O. Committed (the unit decides), unless its
//     unit or an enclosing one is rollback-only: then ErrCommitRolledBack
//     and RolledBack.
//  7. Rollback: the root sends ROLLBACK; a savepoint block sends ROLLBACK TO
//     and RELEASE of its savepoint; a joined block makes its unit
//     rollback-only. RolledBack, and OnRollback hooks run (a joined block's
//     with its unit). When ROLLBACK TO fails, the enclosing unit becomes
//     rollback-only, so the block's work is never committed. Commit or
//     Rollback of an ended block: ErrTransactionDone, nothing changes.
//  8. Transaction: fn returns nil: Commit, whose error is returned; fn
//     returns an error or panics: Rollback, and the error is returned (the
//     panic re-raised); fn ended the block by hand: nil; an enclosing
//     block's end rolled it back: ErrTransactionDone.
//  9. Ending never gives up on an ended ctx: Commit rolls back
//     (ErrCommitRolledBack wrapping ctx's error), and rollbacks run with a
//     cleanup context bounded by closeTimeout. Ending waits for statements
//     other goroutines run; from a scan callback, an end that needs the
//     connection returns ErrConnBusy and changes nothing. An end that
//     needs the connection, from the goroutine whose Querier rows or batch
//     results are still open, closes them first (rule 13).
//  10. After a COMMIT or ROLLBACK sent as SQL, ending any block sends
//     nothing and returns ErrTransactionDone; the block and those open
//     inside it are neither Committed nor RolledBack and no hook runs (the
//     root gives its connection back).
//  11. Hooks run after the end, outside every lock, only on a known
//     outcome, with context.WithoutCancel of the ending call's context,
//     carrying the ended block's parent (or no transaction). A hook
//     registered on a unit that has ended runs at once (with
//     context.Background carrying that unit's parent, or no transaction)
//     or is dropped, as the outcome says.
//  12. A SAVEPOINT that PostgreSQL refused because the transaction was
//     already aborted (a statement had failed; the statement that sent it
//     returns the server's 25P02) never existed, nor did anything queued
//     with it. The savepoint block it opened is rollback-only (statements
//     through it or inside it: ErrTransactionDone), and its end sends
//     nothing for it: no ROLLBACK TO. It reports RolledBack, its Commit
//     returns ErrCommitRolledBack wrapping the cause, its OnRollback hooks
//     run, and its parent is not made rollback-only: the transaction stays
//     as the server has it, aborted and recoverable by RollbackTo to a
//     savepoint made before the failure. A Savepoint handle refused so
//     names no savepoint: the server answers its RollbackTo with 3B001
//     (or, as PostgreSQL resolves names, rolls back to an older savepoint
//     of the same name).
//  13. Rows from Querier.Query (and SendBatch's results) inside a
//     transaction hold its connection until closed. While they are open, a
//     statement, FETCH, CLOSE or Querier call through the transaction from
//     the goroutine reading them returns ErrConnBusy at once, before the
//     transaction's state is looked at, and sends nothing; queuing a
//     SAVEPOINT, registering a hook and opening a block need no connection
//     and work. An end that needs the connection (the root's; a savepoint
//     block's whose SAVEPOINT, or that of a block inside it, was sent)
//     closes them first, reading what is left; after that they give no
//     rows and no error. A joined block, or a savepoint block never sent,
//     ends without touching them: a loop over the rows goes on.
//  14. Transaction with Retry and FailoverBudget: when its root's node
//     failed before COMMIT was sent (the connection was lost or the server
//     ended the session, the node turned read-only (rule 15), or no
//     connection could be made), the server has rolled the transaction
//     back: the root reports RolledBack, its OnRollback hooks run, and
//     Transaction runs the closure again from BEGIN on a fresh connection,
//     with backoff, until the failover budget runs out (then a *RetryError
//     with Failover set). Only when the failure is the node's: an error
//     the closure returned is its own and comes back (a failed ROLLBACK
//     after it does not count). A session that ended before BEGIN was sent
//     loses nothing: the engine takes a fresh connection and the closure
//     runs once. After COMMIT was sent a lost connection is
//     ErrAmbiguousCommit, never run again.
//  15. A statement that meets 25006 (read_only_sql_transaction) in work
//     the engine did not make read-only (ReadOnly) makes the engine ask the
//     node, once the connection is idle again, whether it refuses writes
//     from every session (pg_is_in_recovery, or default_transaction_read_only
//     in its configuration). If so the connection and the pool's idle ones
//     are evicted and the failure is the node's (rule 14); if not (the
//     caller's own SET TRANSACTION READ ONLY) nothing is evicted or re-run.

// Commit commits the transaction. For the outermost transaction it sends
// COMMIT (nothing, if no statement ran) and releases the connection; a
// savepoint block releases its savepoint; a joined block only finishes: the
// outermost transaction decides.
//
// Commit returns ErrCommitRolledBack when the work was rolled back instead:
// PostgreSQL refused it, a statement inside failed, a joined block failed,
// or ctx had ended before Commit (the rollback then runs with a short
// cleanup context of its own, and the error wraps ctx's). It returns
// ErrAmbiguousCommit when the connection died after COMMIT was sent, and
// ErrTransactionDone when the handle already finished (or was rolled back
// because an enclosing block ended while it was open). The connection is
// released whatever happens. Blocks still open inside t are rolled back
// first, so their work is never committed behind their handles' backs; a
// joined block left open makes the Commit roll back. A joined block's
// Commit returns ErrCommitRolledBack when the transaction is already
// rollback-only. The rules in full are at the top of txend.go. Commit and Rollback wait for statements that
// other goroutines are running in the transaction; called from inside a
// scan callback of the same transaction, when they need the connection,
// they return ErrConnBusy and change nothing.
func (t *PostgresTransaction) Commit(ctx context.Context) error {
	return t.finish(ctx, true, nil)
}

// Rollback rolls the transaction back and releases its connection. A
// savepoint block rolls back to its savepoint; a joined block marks the
// whole transaction rollback-only. Blocks still open inside t are rolled
// back with it. The rollback runs even when ctx has ended. After Commit or Rollback it returns ErrTransactionDone and does
// nothing, so it is safe to defer.
func (t *PostgresTransaction) Rollback(ctx context.Context) error {
	return t.finish(ctx, false, errors.New("rolled back by its handle"))
}

// abort rolls back after its closure failed or panicked; a handle already
// finished by hand is left alone.
func (t *PostgresTransaction) abort(ctx context.Context, cause error) error {
	if !t.active() {
		return nil
	}
	err := t.finish(ctx, false, cause)
	if errors.Is(err, ErrTransactionDone) {
		return nil
	}
	return err
}

// finish ends t: commit when commit is true, else roll back because of
// cause. It first ends the blocks still open inside t, as rolled back. A
// block that can end without I/O ends under c.mu alone (so a scan callback
// can open and end blocks); otherwise finish takes the turn, waiting for
// statements other goroutines are running whatever ctx says: giving up
// would leave the transaction open and its connection borrowed for ever.
// Hooks run last, after the turn is given back, so they can run queries.
func (t *PostgresTransaction) finish(ctx context.Context, commit bool, cause error) error {
	c := t.c
	hookCtx := ctx
	ctx = t.traceContext(ctx)
	hooks, err, done := t.endWithoutIO(ctx, commit, cause)
	if !done {
		if err := c.lock(context.Background()); err != nil {
			// The ending goroutine's own open Querier results hold the
			// turn: they close first (rule 9).
			if !c.closeOwnResults() {
				return err
			}
			if err := c.lock(context.Background()); err != nil {
				return err
			}
		}
		hooks, err, done = t.endWithoutIO(ctx, commit, cause)
		if !done {
			hooks, err = t.endWithIO(ctx, commit, cause)
		}
		c.unlock()
	}
	t.traceEnd(firstErr(err, cause))
	if len(hooks) > 0 {
		hookCtx := t.hookContext(hookCtx, t)
		for _, h := range hooks {
			h(hookCtx)
		}
	}
	return err
}

// endWithoutIO ends t when that needs no I/O and reports whether it did:
// t has finished already, or t is a joined block or a savepoint block whose
// SAVEPOINT has not been sent (nor is being sent), and no savepoint block
// open inside t has been sent either.
func (t *PostgresTransaction) endWithoutIO(ctx context.Context, commit bool, cause error) (hooks []func(context.Context), err error, done bool) {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if !t.active() {
		return nil, t.doneErrLocked(), true
	}
	nested := t.openNestedLocked()
	if c.endedBySQL && t.kind != kindRoot {
		// What the SQL did to the block's work is not ours to tell: no
		// outcome, no hook, nothing to send.
		t.endNestedLocked(nested)
		t.state.Store(int32(txUnknown))
		if t.kind == kindSavepoint {
			c.top = t.parent.unit()
		}
		return nil, fmt.Errorf("%w: %w", ErrTransactionDone, errEndedBySQL), true
	}
	if s := outermostSavepoint(nested); s != nil && c.sentLocked(s) {
		return nil, nil, false
	}
	if t.kind == kindRoot || t.kind == kindSavepoint && c.sentLocked(t) {
		return nil, nil, false
	}
	hooks = t.endNestedLocked(nested)
	more, err := t.endUnsentLocked(ctx, commit, cause)
	return append(hooks, more...), err, true
}

// endWithIO ends t and the blocks open inside it, holding the turn. When t
// keeps its work (commit), the outermost savepoint block open inside t is
// rolled back to its savepoint first; when t rolls back, its own rollback
// undoes theirs too.
func (t *PostgresTransaction) endWithIO(ctx context.Context, commit bool, cause error) (hooks []func(context.Context), err error) {
	c := t.c
	c.mu.Lock()
	nested := t.openNestedLocked()
	s := outermostSavepoint(nested)
	rollBack := commit && s != nil && c.sentLocked(s) && !c.endedBySQL
	hooks = t.endNestedLocked(nested)
	c.mu.Unlock()
	if rollBack {
		// A failure makes t's unit rollback-only: t's Commit then rolls back.
		_ = c.rollBackSavepoint(ctx, s)
	}
	var more []func(context.Context)
	switch t.kind {
	case kindRoot:
		more, err = t.endRoot(ctx, commit)
	case kindSavepoint:
		more, err = t.endSavepoint(ctx, commit)
	default:
		c.mu.Lock()
		more, err = t.endUnsentLocked(ctx, commit, cause)
		c.mu.Unlock()
	}
	return append(hooks, more...), err
}

// endUnsentLocked ends t, a joined block or a savepoint block whose
// SAVEPOINT was never sent. A joined block's Commit returns
// ErrCommitRolledBack when its unit is rollback-only: its work will not be
// committed. The caller holds c.mu.
func (t *PostgresTransaction) endUnsentLocked(ctx context.Context, commit bool, cause error) (hooks []func(context.Context), err error) {
	c := t.c
	if t.kind == kindJoined {
		u := t.unit()
		if !commit {
			t.state.Store(int32(txRolledBack))
			if u.abortErr == nil {
				u.abortErr = cause
			}
			return nil, nil
		}
		for x := u; x != nil; x = x.parent {
			if x.abortErr != nil {
				t.state.Store(int32(txRolledBack))
				return nil, commitRolledBack(true, x.abortErr)
			}
		}
		t.state.Store(int32(txCommitted))
		return nil, nil
	}
	// Nothing inside the savepoint block reached the server: forget its
	// SAVEPOINT (unless the server refused it) and every statement queued
	// after it.
	c.forgetLocked(t)
	c.top = t.parent.unit()
	if commit && t.abortErr == nil && ctx.Err() == nil {
		t.state.Store(int32(txCommitted))
		t.moveHooks(t.parent.unit())
		return nil, nil
	}
	t.state.Store(int32(txRolledBack))
	return t.takeHooks(txRolledBack), commitRolledBack(commit, firstErr(t.abortErr, ctx.Err()))
}

// firstErr returns the first non-nil error.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// commitRolledBack is the error of a Commit that ended in a rollback.
func commitRolledBack(commit bool, cause error) error {
	if !commit {
		return nil
	}
	if cause == nil {
		return ErrCommitRolledBack
	}
	return fmt.Errorf("%w: %w", ErrCommitRolledBack, cause)
}
