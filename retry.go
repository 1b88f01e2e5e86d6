package piccolo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

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
		o.attempt = attempt
		err := e.runTx(ctx, fn, o)
		if err == nil || attempt >= attempts || !IsRetryable(err) {
			if err != nil && attempts > 1 && attempt == attempts && IsRetryable(err) {
				return &RetryError{Attempts: attempts, Err: err}
			}
			return err
		}
		if waitErr := sleepBackoff(ctx, attempt); waitErr != nil {
			return fmt.Errorf("piccolo: context ended before retry %d: %w (last failure: %w)", attempt+1, waitErr, err)
		}
	}
}

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

// IsRetryable reports whether err is a serialization failure (40001) or a
// deadlock (40P01): the whole transaction may succeed if run again from BEGIN.
// An ambiguous commit is never retryable.
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
