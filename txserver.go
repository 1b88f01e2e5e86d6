package piccolo

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Ending a block on the server: COMMIT or ROLLBACK of the root, RELEASE
// or ROLLBACK TO of a savepoint block. The rules are at the top of
// txend.go; the caller holds the transaction's turn.

// endRoot sends COMMIT or ROLLBACK, releases the connection and returns
// the hooks to run: those of the outcome, none when it is unknown. The
// caller holds the turn.
func (t *PostgresTransaction) endRoot(ctx context.Context, commit bool) (hooks []func(context.Context), err error) {
	c := t.c
	c.mu.Lock()
	begun, endedBySQL, abortErr := c.begun, c.endedBySQL, t.abortErr
	c.mu.Unlock()
	outcome := txRolledBack
	defer func() { hooks = t.settleRoot(ctx, outcome) }()
	if endedBySQL {
		// A statement sent as SQL ended it: what happened is not ours to tell.
		outcome = txUnknown
		return nil, fmt.Errorf("%w: %w", ErrTransactionDone, errEndedBySQL)
	}
	cause := firstErr(abortErr, ctx.Err())
	if !begun {
		// No statement ran: there is nothing to commit or roll back.
		if commit && cause == nil {
			outcome = txCommitted
			return nil, nil
		}
		return nil, commitRolledBack(commit, cause)
	}
	if !commit || cause != nil {
		cleanup, cancel := cleanupContext(ctx)
		defer cancel()
		_, rbErr := c.conn.Exec(cleanup, "ROLLBACK")
		if commit {
			return nil, commitRolledBack(true, cause)
		}
		if rbErr != nil {
			return nil, fmt.Errorf("piccolo: rollback: %w", rbErr)
		}
		return nil, nil
	}
	if c.conn.IsClosed() {
		// The connection died before COMMIT: the server rolled back.
		return nil, commitRolledBack(true, lostConn{errors.New("the connection was closed before COMMIT")})
	}
	tag, err := c.commit(ctx) // COMMIT, and the WAL position when ctx asks (readafter.go)
	outcome, err = commitOutcome(tag, err)
	return nil, err
}

// commitOutcome reads the answer to COMMIT.
func commitOutcome(tag pgconn.CommandTag, err error) (txState, error) {
	var pgErr *pgconn.PgError
	switch {
	case err == nil && tag.String() == "ROLLBACK":
		return txRolledBack, commitRolledBack(true, errors.New("an earlier statement failed and PostgreSQL rolled the transaction back"))
	case err == nil:
		return txCommitted, nil
	case errors.As(err, &pgErr):
		// The server refused the commit (a deferred constraint, a
		// serialization failure): the transaction is gone. So it is when
		// the answer is the session's end (57P01, 57P02): PostgreSQL sends
		// that error only where it handles interrupts, never between the
		// commit record and COMMIT's reply. (A crash or an immediate
		// shutdown ends a session with a WARNING and the end of the stream,
		// and one terminated while waiting for a synchronous standby warns
		// and says nothing more: both fall to the default case.) So Retry
		// may run it again.
		return txRolledBack, commitRolledBack(true, err)
	default:
		// COMMIT was handed to a live connection that then failed: pgx may
		// call the failure safe to retry, but the server may have
		// committed. Only the caller can find out.
		return txUnknown, fmt.Errorf("%w: %w", ErrAmbiguousCommit, err)
	}
}

// settleRoot records outcome as the end of t, the root: its connection
// goes back, and the hooks of the outcome are returned (none when it is
// unknown). The caller holds the turn.
func (t *PostgresTransaction) settleRoot(ctx context.Context, outcome txState) []func(context.Context) {
	c := t.c
	c.settleReadOnly(ctx)
	c.lease.release(ctx)
	c.conn = nil
	c.mu.Lock()
	defer c.mu.Unlock()
	t.state.Store(int32(outcome))
	return t.takeHooks(outcome)
}

// endSavepoint releases or rolls back a savepoint block whose SAVEPOINT
// reached the server, and returns the hooks to run. The caller holds the
// turn. A block that reports rolled back is rolled back on the server:
// when ROLLBACK TO fails (the connection died, the savepoint was destroyed
// by hand) the enclosing block becomes rollback-only, so that its work
// cannot be committed either.
func (t *PostgresTransaction) endSavepoint(ctx context.Context, commit bool) ([]func(context.Context), error) {
	c := t.c
	parent := t.parent.unit()
	c.mu.Lock()
	// The SAVEPOINT was sent, so was everything queued before it; what is
	// queued after it belongs inside the block, and its end destroys it.
	c.pending = nil
	c.top = parent
	cause := t.abortErr
	if cause == nil && c.conn.PgConn().TxStatus() == 'E' {
		cause = errors.New("a statement inside the savepoint block failed")
	}
	if commit && cause == nil {
		cause = ctx.Err()
	}
	// Deciding to defer the RELEASE and queueing it happen in the step that
	// makes parent the top: a sibling block opened by another goroutine
	// right after queues its SAVEPOINT behind this RELEASE, never before it
	// (a RELEASE sent after a later SAVEPOINT would destroy that one too).
	if commit && cause == nil && c.deferReleaseLocked(t) {
		c.mu.Unlock()
		return nil, nil
	}
	c.mu.Unlock()
	if commit && cause == nil {
		_, err := c.conn.Exec(ctx, "RELEASE SAVEPOINT "+t.savepoint)
		if err == nil {
			c.mu.Lock()
			t.state.Store(int32(txCommitted))
			t.moveHooks(parent)
			c.mu.Unlock()
			return nil, nil
		}
		cause = fmt.Errorf("release savepoint: %w", err)
	}
	rbErr := c.rollBackSavepoint(ctx, t)
	c.mu.Lock()
	defer c.mu.Unlock()
	t.state.Store(int32(txRolledBack))
	hooks := t.takeHooks(txRolledBack)
	if rbErr != nil && !commit {
		return hooks, fmt.Errorf("%w; the enclosing transaction is now rollback-only", rbErr)
	}
	if !commit {
		return hooks, nil
	}
	return hooks, errors.Join(commitRolledBack(true, cause), rbErr)
}

// deferReleaseLocked ends savepoint block t as released without I/O when no
// savepoint statement ran by hand since it opened (none can have destroyed
// its savepoint, so its RELEASE cannot fail while the session lives): its
// RELEASE is queued, to ride with the next statement, and the outermost
// COMMIT or ROLLBACK, or the end of an enclosing savepoint block, makes it
// needless (pending statements are then dropped). It reports whether it
// did. The caller holds the turn and c.mu.
func (c *txConn) deferReleaseLocked(t *PostgresTransaction) bool {
	if c.handSavepoints != t.handSavepoints {
		return false
	}
	c.pending = append(c.pending, "RELEASE SAVEPOINT "+t.savepoint)
	t.state.Store(int32(txCommitted))
	t.moveHooks(t.parent.unit())
	return true
}

// noteHandSavepoint counts a savepoint statement run by hand.
func (c *txConn) noteHandSavepoint() {
	c.mu.Lock()
	c.handSavepoints++
	c.mu.Unlock()
}

// rollBackSavepoint rolls back to block s's savepoint and releases it,
// with a cleanup context when ctx has ended. When that fails, the block
// enclosing s becomes rollback-only, so that s's work can never be
// committed with it. The caller holds the turn.
func (c *txConn) rollBackSavepoint(ctx context.Context, s *PostgresTransaction) error {
	cleanup, cancel := cleanupContext(ctx)
	defer cancel()
	_, err := c.conn.Exec(cleanup, "ROLLBACK TO SAVEPOINT "+s.savepoint+"; RELEASE SAVEPOINT "+s.savepoint)
	if err == nil {
		return nil
	}
	err = fmt.Errorf("piccolo: rollback to savepoint: %w", err)
	c.mu.Lock()
	defer c.mu.Unlock()
	if u := s.parent.unit(); u.abortErr == nil {
		u.abortErr = fmt.Errorf("a savepoint block inside could not be rolled back: %w", err)
	}
	return err
}

// sendCommit sends COMMIT alone, straight through pgconn: pgx's Exec would
// first deallocate the statements its cache invalidated, and a failure
// there (a session the server had ended) comes before COMMIT is written:
// it must not read as an ambiguous commit. The wire is the same: pgx sends
// a statement without arguments as a simple query.
func sendCommit(ctx context.Context, conn *pgx.Conn) (pgconn.CommandTag, error) {
	results, err := conn.PgConn().Exec(ctx, "COMMIT").ReadAll()
	if len(results) == 0 {
		return pgconn.CommandTag{}, err
	}
	return results[len(results)-1].CommandTag, err
}
