package piccolo

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
)

// This file holds what Transaction's Retry does between runs of the
// closure: which failures it re-runs (serialization failures and
// deadlocks; with FailoverBudget, failures of the node before COMMIT was
// sent), how long it waits, and when it gives up.

// retrier decides, after each run of a Transaction closure, whether it
// runs again.
type retrier struct {
	maxAttempts int           // Retry's attempts: runs that may end in a conflict
	budget      time.Duration // FailoverBudget; 0: failovers are not re-run
	runs        int
	conflicts   int       // runs that ended in a serialization failure or deadlock
	failovers   int       // runs that ended in a failover failure
	firstFail   time.Time // of the first failover failure
	waited      time.Duration
}

// next is called with the outcome of a run of the closure, which ctx ran.
// It returns how long to wait before the next run, or done with the error
// Transaction returns.
func (r *retrier) next(ctx context.Context, run run) (wait time.Duration, done bool, _ error) {
	r.runs++
	err := run.err
	switch {
	case err == nil:
		return 0, true, nil
	case IsRetryable(err):
		r.conflicts++
		if r.conflicts >= r.maxAttempts {
			return 0, true, r.giveUp(err, false)
		}
		return conflictBackoff(r.conflicts), false, nil
	case r.budget > 0 && run.rolledBack && ctx.Err() == nil && failoverFailure(run.cause):
		now := time.Now()
		if r.failovers == 0 {
			r.firstFail = now
		}
		left := r.budget - now.Sub(r.firstFail)
		if left <= 0 {
			return 0, true, r.giveUp(err, true)
		}
		r.failovers++
		return min(failoverBackoff(r.failovers), left), false, nil
	}
	return 0, true, err
}

// giveUp is the error of a Transaction whose re-runs ran out: err itself
// when Retry allowed a single run and no failover was re-run.
func (r *retrier) giveUp(err error, failover bool) error {
	if r.runs == 1 && !failover {
		return err
	}
	return &RetryError{Attempts: r.runs, Failover: failover, Waited: r.waited, Err: err}
}

// sleep waits d before the next run, unless ctx ends first.
func (r *retrier) sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		r.waited += d
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// conflictBackoff is the wait before the run after conflict number n:
// exponential from 10ms, capped at 1s, with full jitter so that
// conflicting clients spread out.
func conflictBackoff(n int) time.Duration {
	ceiling := min(10*time.Millisecond<<min(n-1, 10), time.Second)
	return rand.N(ceiling) + time.Millisecond
}

// failoverBackoff is the wait before the run after failover failure
// number n: exponential from 10ms (a lost connection alone is replaced at
// once), capped at 1s, the upper half jittered: a failover takes seconds,
// and waiting clients should come back soon after the new primary accepts
// writes, not all at once.
func failoverBackoff(n int) time.Duration {
	ceiling := min(10*time.Millisecond<<min(n-1, 10), time.Second)
	return ceiling/2 + rand.N(ceiling/2+1)
}

// failoverFailure reports whether err says the transaction's node failed
// under it, or no node could be reached, rather than anything about the
// transaction's work: the connection was lost, the server ended the
// session (57P01, 57P02, 57P03), the node turned read-only (readOnlyNode:
// a 25006 the engine confirmed on the node), or connecting failed for a
// reason a failover explains. An ambiguous commit is not one (COMMIT was
// sent: the server may have committed), nor is a connection closed
// because a context ended (a deadline of the closure's own, say).
func failoverFailure(err error) bool {
	if errors.Is(err, ErrAmbiguousCommit) {
		return false
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return connectFailover(connErr)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var lost lostConn
	var readOnly readOnlyNode
	return errors.As(err, &lost) || errors.As(err, &readOnly) || sessionEnded(err) || errors.Is(err, errSessionsEnded)
}

// connectFailover reports whether a failed connection attempt is what a
// failover looks like from outside: the host refused or dropped the
// connection, or did not answer in time (connect_timeout, AcquireTimeout);
// the server is starting or shutting down
// (57P01, 57P02, 57P03) or out of connections (53300); or, with
// target_session_attrs, no host offered a writable session yet. A refused
// password or an unknown database is not: waiting would not mend it.
func connectFailover(err *pgconn.ConnectError) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return sessionEnded(err) || pgErr.Code == pgerrcode.TooManyConnections
	}
	var netErr net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, pgconn.ErrReadOnlyConnection) || errors.Is(err, pgconn.ErrStandbyConnection) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &netErr)
}
