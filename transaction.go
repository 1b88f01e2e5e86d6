package piccolo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
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
	// handSavepoints is c.handSavepoints when the savepoint block opened.
	handSavepoints int

	state atomic.Int32 // txState; written under c.mu, read anywhere
	// The fields below are guarded by c.mu.
	abortErr error // why this root or savepoint block became rollback-only
	endedBy  error // why an enclosing block's end rolled this open block back
	refused  bool  // kindSavepoint: the server refused its SAVEPOINT (rule 12 of txend.go)

	hooks hookList // guarded by c.hookMu

	traceCtx context.Context // what TxTracer's start returned; nil without one
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
	if err := t.lockUsable(); err != nil {
		return err
	}
	t.c.mu.Unlock()
	return nil
}

// lockUsable takes c.mu when statements may run through t; otherwise it
// returns why, without holding c.mu.
func (t *PostgresTransaction) lockUsable() error {
	t.c.mu.Lock()
	if err := t.usableLocked(); err != nil {
		t.c.mu.Unlock()
		return err
	}
	return nil
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
		switch {
		case x.refused: // its abortErr says why
			return fmt.Errorf("%w: %w", ErrTransactionDone, x.abortErr)
		case x.abortErr != nil:
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

// errEndedBySQL says why a transaction ended without Commit or Rollback.
var errEndedBySQL = errors.New("a COMMIT or ROLLBACK sent as SQL ended the transaction")

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

// Begin starts a transaction and returns a context that carries it; run
// queries with that context, then Commit or Rollback. Inside another
// transaction of this engine, Nesting decides what happens (NestJoin by
// default). Retry is refused: only Transaction can re-run work.
//
// Begin borrows a connection but sends nothing: BEGIN goes out with the
// first statement (in its pipeline, see README's "Transactions"). End a nested block before the block it is nested in:
// that end rolls back blocks still open inside it (see Commit, and the
// rules at the top of txend.go).
func (e *PostgresEngine) Begin(ctx context.Context, opts ...TxOption) (context.Context, *PostgresTransaction, error) {
	o, err := collectTxOptions(opts)
	if err != nil {
		return ctx, nil, err
	}
	if o.retry {
		return ctx, nil, errors.New("piccolo: Begin does not take Retry: only Transaction can run its closure again")
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
		return e.withTx(tx.traceStart(ctx, o), tx), tx, nil
	}
	l, err := e.acquire(ctx)
	if err != nil {
		return ctx, nil, err
	}
	tx := &PostgresTransaction{c: newTxConn(e, l, o.beginSQL()), kind: kindRoot}
	tx.c.readOnly = o.readOnly
	tx.c.top = tx
	return e.withTx(tx.traceStart(ctx, o), tx), tx, nil
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
	if err := t.lockUsable(); err != nil {
		if !t.active() {
			// Most often a context kept from inside a finished transaction.
			return nil, fmt.Errorf("%w: the context carries a transaction that has ended, so nothing can nest in it; "+
				"start the new transaction from the context the finished one was started with", err)
		}
		return nil, err
	}
	defer c.mu.Unlock()
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
		child.handSavepoints = c.handSavepoints
	}
	c.open = append(slices.DeleteFunc(c.open, func(x *PostgresTransaction) bool {
		return txState(x.state.Load()) != txActive
	}), child)
	return child, nil
}
