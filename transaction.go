package piccolo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"
)

// txKey is the context key of an engine's transaction. It holds the engine,
// so a transaction of engine A is invisible to engine B.
type txKey struct{ engine *PostgresEngine }

func (e *PostgresEngine) withTx(ctx context.Context, tx *PostgresTransaction) context.Context {
	return context.WithValue(ctx, txKey{e}, tx)
}

func (e *PostgresEngine) txFrom(ctx context.Context) *PostgresTransaction {
	tx, _ := ctx.Value(txKey{e}).(*PostgresTransaction)
	return tx
}

// CurrentTransaction returns the transaction the context carries for this
// engine, or nil. After a manual Commit or Rollback it still returns the
// finished handle; Committed and RolledBack tell which.
func (e *PostgresEngine) CurrentTransaction(ctx context.Context) *PostgresTransaction {
	return e.txFrom(ctx)
}

// TransactionExists reports whether the context carries a transaction of
// this engine that can still run statements: false after Commit or
// Rollback, once a failed joined block made the transaction rollback-only,
// and once a COMMIT or ROLLBACK sent as SQL ended it. A transaction that
// PostgreSQL aborted (a failed statement whose error was swallowed) still
// exists: rolling back to a savepoint can recover it. TransactionExists
// never waits for statements other goroutines run in the transaction. A
// transaction whose connection is busy for the context (a scan callback's
// own, or an outer context while a NestSavepoint block is open: statements
// get ErrConnBusy) still exists.
func (e *PostgresEngine) TransactionExists(ctx context.Context) bool {
	tx := e.txFrom(ctx)
	return tx != nil && tx.usable() == nil
}

type txState int32

const (
	txActive txState = iota
	txCommitted
	txRolledBack
	txUnknown // the connection died after COMMIT was sent
)

type txKind uint8

const (
	kindRoot      txKind = iota // the outermost transaction: owns BEGIN and COMMIT
	kindJoined                  // NestJoin: runs inside its parent, owns nothing
	kindSavepoint               // NestSavepoint: owns a savepoint
)

// PostgresTransaction is a transaction carried in a context.Context: every
// query run with that context (or one derived from it) runs on its
// connection. Obtain one with PostgresEngine.Transaction or Begin.
//
// A transaction is single-use: after Commit or Rollback every statement
// through its context fails with ErrTransactionDone and never runs in
// autocommit. Rollback after Commit is harmless, so `defer tx.Rollback(ctx)`
// is always safe.
type PostgresTransaction struct {
	c         *txConn
	parent    *PostgresTransaction
	kind      txKind
	savepoint string // kindSavepoint: its quoted savepoint name

	state atomic.Int32 // txState; written under c.mu, read anywhere
	// The fields below are guarded by c.mu.
	abortErr   error // why this root or savepoint block became rollback-only
	endedBy    error // why an enclosing block's end rolled this open block back
	onCommit   []func(context.Context)
	onRollback []func(context.Context)
}

// Committed reports whether this handle's Commit succeeded. For a joined
// block it means the block finished; the outermost transaction decides.
func (t *PostgresTransaction) Committed() bool { return txState(t.state.Load()) == txCommitted }

// RolledBack reports whether this handle was rolled back, by Rollback, by
// an error or panic in its closure, or by a Commit that PostgreSQL turned
// into a rollback.
func (t *PostgresTransaction) RolledBack() bool { return txState(t.state.Load()) == txRolledBack }

// active reports whether this handle and every enclosing one are unfinished.
func (t *PostgresTransaction) active() bool {
	for x := t; x != nil; x = x.parent {
		if txState(x.state.Load()) != txActive {
			return false
		}
	}
	return true
}

// unit returns the block whose fate this one shares: itself unless it
// joined its parent.
func (t *PostgresTransaction) unit() *PostgresTransaction {
	x := t
	for x.kind == kindJoined {
		x = x.parent
	}
	return x
}

// usable returns nil when statements may run through t.
func (t *PostgresTransaction) usable() error {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	return t.usableLocked()
}

// usableLocked is usable for a caller holding c.mu.
func (t *PostgresTransaction) usableLocked() error {
	if !t.active() {
		return t.doneErrLocked()
	}
	if t.c.endedBySQL {
		return fmt.Errorf("%w: %w; use Commit and Rollback", ErrTransactionDone, errEndedBySQL)
	}
	for x := t; x != nil; x = x.parent {
		if x.abortErr != nil {
			return fmt.Errorf("%w: rollback-only after a nested block failed: %w", ErrTransactionDone, x.abortErr)
		}
	}
	return nil
}

// doneErrLocked is the error for a use of t after t or an enclosing block
// finished: ErrTransactionDone, saying why when an enclosing block's end
// rolled t back. The caller holds c.mu.
func (t *PostgresTransaction) doneErrLocked() error {
	for x := t; x != nil; x = x.parent {
		if x.endedBy != nil {
			return fmt.Errorf("%w: %w", ErrTransactionDone, x.endedBy)
		}
	}
	return ErrTransactionDone
}

// errOutsideBlock is why a statement through a handle that is not inside
// the innermost open NestSavepoint block is refused.
var errOutsideBlock = fmt.Errorf("%w: a NestSavepoint block of this transaction is open: "+
	"run this statement inside it (its context) or after it ends; its rollback would undo it", ErrConnBusy)

// insideTopLocked returns nil when t is the innermost open savepoint block
// (or the root, when none is open) or a block inside it: only then does a
// statement through t run where the server will keep or undo it with t.
// The caller holds c.mu.
func (t *PostgresTransaction) insideTopLocked() error {
	for x := t; x != nil; x = x.parent {
		if x == t.c.top {
			return nil
		}
	}
	return errOutsideBlock
}

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
// context.Background.
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
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	u := t.unit()
	// A released savepoint block handed its hooks to its parent.
	for txState(u.state.Load()) == txCommitted && u.parent != nil {
		u = u.parent.unit()
	}
	if txState(u.state.Load()) != txActive {
		return u
	}
	if onCommit {
		u.onCommit = append(u.onCommit, fn)
	} else {
		u.onRollback = append(u.onRollback, fn)
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

// Begin starts a transaction and returns a context that carries it; run
// queries with that context, then Commit or Rollback. Inside another
// transaction of this engine, Nesting decides what happens (NestJoin by
// default). Retry is ignored: only Transaction can re-run work.
//
// Begin borrows a connection but sends nothing: BEGIN goes out before the
// first statement. End a nested block before the block it is nested in:
// that end rolls back blocks still open inside it (see Commit, and the
// rules at the top of txend.go).
func (e *PostgresEngine) Begin(ctx context.Context, opts ...TxOption) (context.Context, *PostgresTransaction, error) {
	o, err := collectTxOptions(opts)
	if err != nil {
		return ctx, nil, err
	}
	return e.begin(ctx, o)
}

func (e *PostgresEngine) begin(ctx context.Context, o txOptions) (context.Context, *PostgresTransaction, error) {
	if err := ctx.Err(); err != nil {
		return ctx, nil, err
	}
	if parent := e.txFrom(ctx); parent != nil {
		tx, err := parent.nest(o.nesting)
		if err != nil {
			return ctx, nil, err
		}
		return e.withTx(ctx, tx), tx, nil
	}
	l, err := e.acquire(ctx)
	if err != nil {
		return ctx, nil, err
	}
	tx := &PostgresTransaction{c: newTxConn(e, l, o.beginSQL()), kind: kindRoot}
	tx.c.top = tx
	return e.withTx(ctx, tx), tx, nil
}

// errSiblingSavepointBlock is why a NestSavepoint block may not open beside
// another one.
const errSiblingSavepointBlock = "another NestSavepoint block of this transaction is still open; " +
	"savepoints form a stack on the connection, so rolling back either block would undo the other's work: " +
	"open this block inside that one (with the context it carries), or after it ends"

// nest starts a block inside t. It needs no connection: a SAVEPOINT is
// only queued.
func (t *PostgresTransaction) nest(mode NestMode) (*PostgresTransaction, error) {
	if mode == NestRefuse {
		return nil, ErrNestedTransaction
	}
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := t.usableLocked(); err != nil {
		return nil, err
	}
	child := &PostgresTransaction{c: c, parent: t, kind: kindJoined}
	if mode == NestSavepoint {
		if t.unit() != c.top {
			return nil, fmt.Errorf("%w: %s", ErrNestedTransaction, errSiblingSavepointBlock)
		}
		c.top = child
		child.kind = kindSavepoint
		// The space keeps the name apart from every name Savepoint accepts.
		c.savepoints++
		child.savepoint = fmt.Sprintf(`"piccolo nested %d"`, c.savepoints)
		c.pending = append(c.pending, "SAVEPOINT "+child.savepoint)
	}
	c.open = append(slices.DeleteFunc(c.open, func(x *PostgresTransaction) bool {
		return txState(x.state.Load()) != txActive
	}), child)
	return child, nil
}

// Transaction runs fn in a transaction carried by the context fn receives.
// When fn returns nil the transaction commits; when it returns an error or
// panics it rolls back, and the error is returned (the panic re-raised).
// fn may Commit or Rollback by hand through CurrentTransaction; that is
// honoured and nothing is sent twice.
//
// Inside another transaction of this engine, Nesting decides (NestJoin by
// default). A nested block must end before the block it is nested in: one
// still open then (fn running on in another goroutine) is rolled back, and
// Transaction returns ErrTransactionDone (see Commit). With Retry, the closure is run again from BEGIN after a
// serialization failure or deadlock; fn must then be safe to re-run.
func (e *PostgresEngine) Transaction(ctx context.Context, fn func(ctx context.Context) error, opts ...TxOption) error {
	o, err := collectTxOptions(opts)
	if err != nil {
		return err
	}
	if fn == nil {
		return errors.New("piccolo: Transaction: nil function")
	}
	attempts := o.maxAttempts
	if e.txFrom(ctx) != nil {
		attempts = 1 // only the outermost transaction can start over
	}
	for attempt := 1; ; attempt++ {
		err := e.runTx(ctx, fn, o)
		if err == nil || attempt >= attempts || !IsRetryable(err) {
			if err != nil && attempts > 1 && attempt == attempts && IsRetryable(err) {
				return fmt.Errorf("piccolo: transaction failed after %d attempts: %w", attempts, err)
			}
			return err
		}
		if waitErr := sleepBackoff(ctx, attempt); waitErr != nil {
			return fmt.Errorf("piccolo: context ended before retry %d: %w (last failure: %w)", attempt+1, waitErr, err)
		}
	}
}

// errEndedBySQL says why a transaction ended without Commit or Rollback.
var errEndedBySQL = errors.New("a COMMIT or ROLLBACK sent as SQL ended the transaction")

// errPanicked is the rollback cause recorded when a closure panics.
var errPanicked = errors.New("piccolo: transaction closure panicked")

func (e *PostgresEngine) runTx(ctx context.Context, fn func(ctx context.Context) error, o txOptions) error {
	txCtx, tx, err := e.begin(ctx, o)
	if err != nil {
		return err
	}
	returned := false
	defer func() {
		if !returned { // panic or runtime.Goexit: roll back, let it go on
			_ = tx.abort(ctx, errPanicked)
		}
	}()
	err = fn(txCtx)
	returned = true
	if err != nil {
		if rbErr := tx.abort(ctx, err); rbErr != nil {
			return errors.Join(err, rbErr)
		}
		return err
	}
	if !tx.active() {
		// Committed or rolled back by hand (nil), or rolled back because an
		// enclosing block ended while fn ran: that is not a success.
		return tx.endedByEnclosing()
	}
	return tx.Commit(ctx)
}

// sleepBackoff waits before retry number attempt: exponential from 10ms,
// capped at 1s, with full jitter so that conflicting clients spread out.
func sleepBackoff(ctx context.Context, attempt int) error {
	ceiling := min(10*time.Millisecond<<min(attempt-1, 10), time.Second)
	timer := time.NewTimer(rand.N(ceiling) + time.Millisecond)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
