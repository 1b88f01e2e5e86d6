package piccolo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
// this engine that can still run statements.
func (e *PostgresEngine) TransactionExists(ctx context.Context) bool {
	tx := e.txFrom(ctx)
	return tx != nil && tx.active()
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

// txConn is the connection of an outermost transaction, shared by every
// block nested in it. Its lock serialises goroutines that share the
// transaction's context (pgx connections are not safe for concurrent use);
// waiting for it honours the waiter's context.
type txConn struct {
	engine *PostgresEngine
	sem    chan struct{} // the lock: holding it is having sent into it
	conn   *pgx.Conn     // lease.conn until the transaction ends, then nil
	lease  lease
	// pending holds BEGIN and SAVEPOINT statements not sent yet: they go out
	// before the next statement, so a transaction that runs nothing costs no
	// round trip.
	pending    []string
	begun      bool            // BEGIN has reached the server
	savepoints int             // numbers generated savepoint names
	named      map[string]bool // savepoint names the caller chose, which generated names avoid
	// endedBySQL is set when a statement sent as SQL (COMMIT, ROLLBACK)
	// ended the transaction behind the engine's back.
	endedBySQL bool
}

func newTxConn(e *PostgresEngine, l lease, begin string) *txConn {
	return &txConn{engine: e, sem: make(chan struct{}, 1), conn: l.conn, lease: l, pending: []string{begin}}
}

// lock takes the connection, giving up when ctx ends first.
func (c *txConn) lock(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case c.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("piccolo: waiting for the transaction's connection: %w", ctx.Err())
	}
}

// lockQuick takes the connection for bookkeeping that does no I/O.
func (c *txConn) lockQuick() { c.sem <- struct{}{} }

func (c *txConn) unlock() { <-c.sem }

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

	state atomic.Int32 // txState; written under c's lock, read anywhere
	// The fields below are guarded by c's lock.
	abortErr   error // why this root or savepoint block became rollback-only
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

// usableLocked returns nil when statements may run through t.
func (t *PostgresTransaction) usableLocked() error {
	if !t.active() {
		return ErrTransactionDone
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

// OnCommit registers fn to run after the outermost transaction commits,
// with a context that no longer carries the transaction (fn may run
// queries of its own). Hooks of a joined block wait for the outermost
// transaction; hooks of a savepoint block that rolls back are dropped.
// Registered on a transaction that has already committed, fn runs at once;
// on one that rolled back, it is dropped.
func (t *PostgresTransaction) OnCommit(fn func(ctx context.Context)) {
	if fn == nil {
		return
	}
	if u := t.addHook(fn, true); u != nil && txState(u.state.Load()) == txCommitted {
		fn(t.hookContext(context.Background(), u))
	}
}

// OnRollback registers fn to run after the outermost transaction rolls back,
// a Commit that failed included. When a savepoint block rolls back, its
// OnRollback hooks run right away: that block's work is gone. Registered on
// a transaction that has already rolled back, fn runs at once; on one that
// committed, it is dropped.
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
	t.c.lockQuick()
	defer t.c.unlock()
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
// carrying u's parent, or no transaction of the engine, so that queries the
// hooks run do not fail with ErrTransactionDone.
func (t *PostgresTransaction) hookContext(ctx context.Context, u *PostgresTransaction) context.Context {
	return t.c.engine.withTx(ctx, u.parent)
}

// Begin starts a transaction and returns a context that carries it; run
// queries with that context, then Commit or Rollback. Inside another
// transaction of this engine, Nesting decides what happens (NestJoin by
// default). Retry is ignored: only Transaction can re-run work.
//
// Begin borrows a connection but sends nothing: BEGIN goes out before the
// first statement.
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
		tx, err := parent.nest(ctx, o.nesting)
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
	return e.withTx(ctx, tx), tx, nil
}

// nest starts a block inside t.
func (t *PostgresTransaction) nest(ctx context.Context, mode NestMode) (*PostgresTransaction, error) {
	if mode == NestRefuse {
		return nil, ErrNestedTransaction
	}
	c := t.c
	if err := c.lock(ctx); err != nil {
		return nil, err
	}
	defer c.unlock()
	if err := t.usableLocked(); err != nil {
		return nil, err
	}
	child := &PostgresTransaction{c: c, parent: t, kind: kindJoined}
	if mode == NestSavepoint {
		child.kind = kindSavepoint
		// The space keeps the name apart from every name Savepoint accepts.
		c.savepoints++
		child.savepoint = fmt.Sprintf(`"piccolo nested %d"`, c.savepoints)
		c.pending = append(c.pending, "SAVEPOINT "+child.savepoint)
	}
	return child, nil
}

// nextSavepointName generates savepoint_1, savepoint_2..., skipping names
// the caller chose (PostgreSQL resolves a name to its newest savepoint).
func (c *txConn) nextSavepointName() string {
	for {
		c.savepoints++
		name := fmt.Sprintf("savepoint_%d", c.savepoints)
		if !c.named[name] {
			return name
		}
	}
}

// withConn runs fn on the transaction's connection after sending pending
// statements, holding the connection so that goroutines take turns.
func (t *PostgresTransaction) withConn(ctx context.Context, fn connFunc) error {
	c := t.c
	if err := c.lock(ctx); err != nil {
		return err
	}
	defer c.unlock()
	if err := t.usableLocked(); err != nil {
		return err
	}
	if err := c.flushLocked(ctx); err != nil {
		return markLost(c.conn, err)
	}
	err := fn(ctx, c.conn)
	c.checkEndedLocked()
	return markLost(c.conn, err)
}

// statement runs q through t; it also returns how many rows scan saw.
func (t *PostgresTransaction) statement(ctx context.Context, q Querystring, scan func(pgx.Rows) error) (tag pgconn.CommandTag, seen int, err error) {
	err = t.withConn(ctx, func(ctx context.Context, conn *pgx.Conn) error {
		tag, seen, err = runStatement(ctx, conn, q, scan)
		return err
	})
	return tag, seen, err
}

// checkEndedLocked notices a transaction that a statement sent as SQL
// (COMMIT, ROLLBACK) ended on the server: from then on the engine refuses
// statements instead of letting them run in autocommit.
func (c *txConn) checkEndedLocked() {
	if c.begun && !c.endedBySQL && c.conn.PgConn().TxStatus() == 'I' && !c.conn.IsClosed() {
		c.endedBySQL = true
	}
}

// flushLocked sends pending BEGIN and SAVEPOINT statements in one round
// trip, before the statement that needs them. They travel alone so that a
// statement that fails to parse or encode still finds them sent, as
// PostgreSQL's own transaction rules expect.
func (c *txConn) flushLocked(ctx context.Context) error {
	if len(c.pending) == 0 {
		return nil
	}
	begin := strings.Join(c.pending, "; ")
	_, err := c.conn.Exec(ctx, begin)
	if err != nil && !c.begun && sessionEnded(err) && c.lease.pooled != nil && ctx.Err() == nil {
		// The session of the transaction's pooled connection ended before
		// the transaction began: start it on a fresh connection. Sending
		// the pending statements again is safe however far they got: BEGIN
		// and SAVEPOINT have no effect outside the session that ended.
		// (Statements are never sent again: see acquire.)
		c.lease.release()
		c.engine.resetPool()
		l, acqErr := c.engine.acquire(ctx)
		if acqErr != nil {
			return fmt.Errorf("piccolo: begin: %w", errors.Join(err, acqErr))
		}
		c.lease, c.conn = l, l.conn
		_, err = c.conn.Exec(ctx, begin)
	}
	if c.conn.PgConn().TxStatus() != 'I' {
		// BEGIN ran; the statements after it cannot fail but with the
		// connection, which ends the transaction anyway.
		c.begun = true
		c.pending = nil
	}
	if err != nil {
		return fmt.Errorf("piccolo: begin: %w", err)
	}
	return nil
}

// Commit commits the transaction. For the outermost transaction it sends
// COMMIT (nothing, if no statement ran) and releases the connection; a
// savepoint block releases its savepoint; a joined block only finishes: the
// outermost transaction decides.
//
// Commit returns ErrCommitRolledBack when PostgreSQL rolled back instead,
// ErrAmbiguousCommit when the connection died after COMMIT was sent, and
// ErrTransactionDone when the handle already finished. The connection is
// released whatever happens. Commit and Rollback wait for statements that
// other goroutines are running in the transaction.
func (t *PostgresTransaction) Commit(ctx context.Context) error {
	return t.finish(ctx, true, nil)
}

// Rollback rolls the transaction back and releases its connection. A
// savepoint block rolls back to its savepoint; a joined block marks the
// whole transaction rollback-only. After Commit or Rollback it returns
// ErrTransactionDone and does nothing, so it is safe to defer.
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

// finish ends t: commit when commit is true, else roll back because of cause.
func (t *PostgresTransaction) finish(ctx context.Context, commit bool, cause error) error {
	c := t.c
	// Ending the transaction waits for statements other goroutines are
	// running in it, whatever ctx says: giving up would leave the
	// transaction open and its connection borrowed for ever.
	c.lockQuick()
	if !t.active() {
		c.unlock()
		return ErrTransactionDone
	}
	var (
		err   error
		hooks []func(context.Context)
	)
	switch t.kind {
	case kindJoined:
		if commit {
			t.state.Store(int32(txCommitted))
		} else {
			t.state.Store(int32(txRolledBack))
			if u := t.unit(); u.abortErr == nil {
				u.abortErr = cause
			}
		}
	case kindSavepoint:
		hooks, err = t.endSavepointLocked(ctx, commit)
	case kindRoot:
		hooks, err = t.endRootLocked(ctx, commit)
	}
	c.unlock()
	if len(hooks) > 0 {
		hookCtx := t.hookContext(ctx, t)
		for _, h := range hooks {
			h(hookCtx)
		}
	}
	return err
}

// endSavepointLocked releases or rolls back a savepoint block and returns
// the hooks to run once the lock is released.
func (t *PostgresTransaction) endSavepointLocked(ctx context.Context, commit bool) ([]func(context.Context), error) {
	c := t.c
	parent := t.parent.unit()
	if n := len(c.pending); n > 0 && c.pending[n-1] == "SAVEPOINT "+t.savepoint {
		// Nothing ran inside the block: the savepoint was never sent.
		c.pending = c.pending[:n-1]
		if commit && t.abortErr == nil {
			t.state.Store(int32(txCommitted))
			t.moveHooksLocked(parent)
			return nil, nil
		}
		t.state.Store(int32(txRolledBack))
		return t.onRollback, commitRolledBack(commit, t.abortErr)
	}
	if err := c.flushLocked(ctx); err != nil {
		t.state.Store(int32(txRolledBack))
		return t.onRollback, err
	}
	failed := t.abortErr != nil || c.conn.PgConn().TxStatus() == 'E'
	if commit && !failed {
		if _, err := c.conn.Exec(ctx, "RELEASE SAVEPOINT "+t.savepoint); err != nil {
			t.state.Store(int32(txRolledBack))
			return t.onRollback, fmt.Errorf("piccolo: release savepoint: %w", err)
		}
		t.state.Store(int32(txCommitted))
		t.moveHooksLocked(parent)
		return nil, nil
	}
	t.state.Store(int32(txRolledBack))
	cleanup, cancel := cleanupContext(ctx)
	defer cancel()
	if _, err := c.conn.Exec(cleanup, "ROLLBACK TO SAVEPOINT "+t.savepoint+"; RELEASE SAVEPOINT "+t.savepoint); err != nil {
		// The connection is gone or the transaction is beyond repair: the
		// block's work is lost either way.
		return t.onRollback, fmt.Errorf("piccolo: rollback to savepoint: %w", err)
	}
	if commit {
		cause := t.abortErr
		if cause == nil {
			cause = errors.New("a statement inside the savepoint block failed")
		}
		return t.onRollback, commitRolledBack(true, cause)
	}
	return t.onRollback, nil
}

func (t *PostgresTransaction) moveHooksLocked(to *PostgresTransaction) {
	to.onCommit = append(to.onCommit, t.onCommit...)
	to.onRollback = append(to.onRollback, t.onRollback...)
	t.onCommit, t.onRollback = nil, nil
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

// endRootLocked sends COMMIT or ROLLBACK, releases the connection and
// returns the hooks to run once the lock is released.
func (t *PostgresTransaction) endRootLocked(ctx context.Context, commit bool) (hooks []func(context.Context), err error) {
	c := t.c
	defer func() {
		c.lease.release()
		c.conn = nil
		switch txState(t.state.Load()) {
		case txCommitted:
			hooks = t.onCommit
		case txRolledBack:
			hooks = t.onRollback
		}
	}()
	if c.endedBySQL {
		// A statement sent as SQL ended it: what happened is not ours to tell.
		t.state.Store(int32(txUnknown))
		return nil, fmt.Errorf("%w: %w", ErrTransactionDone, errEndedBySQL)
	}
	if !c.begun {
		// No statement ran: there is nothing to commit or roll back.
		if commit && t.abortErr == nil {
			t.state.Store(int32(txCommitted))
			return nil, nil
		}
		t.state.Store(int32(txRolledBack))
		return nil, commitRolledBack(commit, t.abortErr)
	}
	if !commit || t.abortErr != nil || ctx.Err() != nil {
		t.state.Store(int32(txRolledBack))
		cleanup, cancel := cleanupContext(ctx)
		defer cancel()
		_, rbErr := c.conn.Exec(cleanup, "ROLLBACK")
		if commit {
			cause := t.abortErr
			if cause == nil {
				cause = ctx.Err()
			}
			return nil, commitRolledBack(true, cause)
		}
		if rbErr != nil {
			return nil, fmt.Errorf("piccolo: rollback: %w", rbErr)
		}
		return nil, nil
	}
	if c.conn.IsClosed() {
		// The connection died before COMMIT: the server rolled back.
		t.state.Store(int32(txRolledBack))
		return nil, commitRolledBack(true, errors.New("the connection was closed before COMMIT"))
	}
	tag, err := c.conn.Exec(ctx, "COMMIT")
	var pgErr *pgconn.PgError
	switch {
	case err == nil && tag.String() == "ROLLBACK":
		t.state.Store(int32(txRolledBack))
		return nil, commitRolledBack(true, errors.New("an earlier statement failed and PostgreSQL rolled the transaction back"))
	case err == nil:
		t.state.Store(int32(txCommitted))
		return nil, nil
	case errors.As(err, &pgErr):
		// The server refused the commit (a deferred constraint, a
		// serialization failure): the transaction is gone.
		t.state.Store(int32(txRolledBack))
		return nil, commitRolledBack(true, err)
	default:
		// COMMIT was handed to a live connection that then failed: pgx may
		// call the failure safe to retry, but the server may have
		// committed. Only the caller can find out.
		t.state.Store(int32(txUnknown))
		return nil, fmt.Errorf("%w: %w", ErrAmbiguousCommit, err)
	}
}

// cleanupContext returns a context for statements that must run even when
// ctx has ended (ROLLBACK, CLOSE), bounded so they never hang.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx.Err() == nil {
		return ctx, func() {}
	}
	return context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
}

// Transaction runs fn in a transaction carried by the context fn receives.
// When fn returns nil the transaction commits; when it returns an error or
// panics it rolls back, and the error is returned (the panic re-raised).
// fn may Commit or Rollback by hand through CurrentTransaction; that is
// honoured and nothing is sent twice.
//
// Inside another transaction of this engine, Nesting decides (NestJoin by
// default). With Retry, the closure is run again from BEGIN after a
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
		return nil // committed or rolled back by hand
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
