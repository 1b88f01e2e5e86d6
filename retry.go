package piccolo

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
)

// Transaction runs fn in a transaction carried by the context fn receives.
// When fn returns nil the transaction commits; when it returns an error or
// panics it rolls back, and the error is returned (the panic re-raised).
// fn may Commit or Rollback by hand through CurrentTransaction; that is
// honoured and nothing is sent twice.
//
// Inside another transaction of this engine, Nesting decides (NestJoin by
// default). A nested block must end before the block it is nested in: one
// still open then (fn running on in another goroutine) is rolled back, and
// Transaction returns ErrTransactionDone (see Commit). With Retry, the
// closure is run again from BEGIN after a serialization failure or
// deadlock, and with FailoverBudget also after its node failed before
// COMMIT was sent; fn must then be safe to re-run.
func (e *PostgresEngine) Transaction(ctx context.Context, fn func(ctx context.Context) error, opts ...TxOption) error {
	o, err := collectTxOptions(opts)
	if err != nil {
		return err
	}
	if fn == nil {
		return errors.New("piccolo: Transaction: nil function")
	}
	r := retrier{maxAttempts: o.maxAttempts, budget: o.failover}
	if e.txFrom(ctx) != nil {
		r = retrier{maxAttempts: 1} // only the outermost transaction can start over
	}
	for {
		o.attempt = r.runs + 1 // the TxTracer's attempt
		wait, done, err := r.next(ctx, e.runTx(ctx, fn, o))
		if done {
			return err
		}
		if waitErr := r.sleep(ctx, wait); waitErr != nil {
			return fmt.Errorf("piccolo: context ended before retry %d: %w (last failure: %w)", r.runs+1, waitErr, err)
		}
	}
}

// errPanicked is the rollback cause recorded when a closure panics.
var errPanicked = errors.New("piccolo: transaction closure panicked")

// run is the outcome of one run of a Transaction closure.
type run struct {
	err error // what Transaction returns for the run
	// cause is the failure that decides whether Retry re-runs a node's
	// failure: the closure's own error when it returned one (a rollback
	// that fails after it is not the closure's failure), else that of
	// Begin or Commit.
	cause error
	// rolledBack: the transaction is known not to have committed: it never
	// began, or it rolled back.
	rolledBack bool
}

// runTx runs fn once in a transaction.
func (e *PostgresEngine) runTx(ctx context.Context, fn func(ctx context.Context) error, o txOptions) (r run) {
	txCtx, tx, err := e.begin(ctx, o)
	if err != nil {
		return run{err: err, cause: err, rolledBack: true}
	}
	defer func() {
		r.rolledBack = tx.RolledBack()
		if r.cause != nil && tx.c.demoted.Load() {
			// A statement met 25006 because the node turned read-only
			// (settleReadOnly): a failure of the node, whatever fn made of it.
			r.cause = readOnlyNode{r.cause}
		}
	}()
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
			return run{err: errors.Join(err, rbErr), cause: err}
		}
		return run{err: err, cause: err}
	}
	if !tx.active() {
		// Committed or rolled back by hand (nil), or rolled back because an
		// enclosing block ended while fn ran: that is not a success.
		err = tx.endedByEnclosing()
		return run{err: err, cause: err}
	}
	err = tx.Commit(ctx)
	return run{err: err, cause: err}
}

// IsRetryable reports whether err is a serialization failure (40001) or a
// deadlock (40P01): the whole transaction may succeed if run again from BEGIN.
// An ambiguous commit is never retryable. (Failures of the node, which
// Retry re-runs with FailoverBudget, are not reported here: only
// Transaction knows that COMMIT had not been sent.)
func IsRetryable(err error) bool {
	if errors.Is(err, ErrAmbiguousCommit) {
		return false
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == pgerrcode.SerializationFailure || pgErr.Code == pgerrcode.DeadlockDetected
}
