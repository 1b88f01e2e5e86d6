package piccolo

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Ending a block ends the blocks still open inside it first (see the rules
// in txend.go): this file finds them and marks them rolled back.

// errEndedByEnclosing is why a block open when an enclosing one ended was
// rolled back.
var errEndedByEnclosing = errors.New("an enclosing block ended while this block was open, and rolled it back")

// openNestedLocked returns the open blocks nested in t, innermost first.
// The caller holds c.mu.
func (t *PostgresTransaction) openNestedLocked() []*PostgresTransaction {
	var nested []*PostgresTransaction
	for _, x := range slices.Backward(t.c.open) {
		if txState(x.state.Load()) != txActive {
			continue
		}
		for p := x.parent; p != nil; p = p.parent {
			if p == t {
				nested = append(nested, x)
				break
			}
		}
	}
	return nested
}

// outermostSavepoint returns the last savepoint block of nested (innermost
// first), or nil.
func outermostSavepoint(nested []*PostgresTransaction) *PostgresTransaction {
	for _, x := range slices.Backward(nested) {
		if x.kind == kindSavepoint {
			return x
		}
	}
	return nil
}

// sentLocked reports whether the SAVEPOINT of block s has been sent, or is
// being sent, and was not refused (rule 12). The caller holds c.mu.
func (c *txConn) sentLocked(s *PostgresTransaction) bool {
	return !s.refused && slices.Index(c.pending, "SAVEPOINT "+s.savepoint) < c.inFlight
}

// forgetLocked drops the pending SAVEPOINT of block s and every statement
// queued after it: they belong inside s, which is ending. When s's
// SAVEPOINT is no longer pending (sent, or refused), everything pending was
// queued inside s. The caller holds c.mu.
func (c *txConn) forgetLocked(s *PostgresTransaction) {
	if i := slices.Index(c.pending, "SAVEPOINT "+s.savepoint); i >= 0 {
		c.pending = c.pending[:i]
	} else {
		c.pending = nil
	}
}

// refuseLocked records that the server refused the SAVEPOINTs stmts
// because the transaction had been aborted by a failed statement (rule
// 12): their savepoints never existed. Each savepoint block among them is
// refused: rollback-only, so nothing runs inside it, and ending without
// I/O, so its end sends no ROLLBACK TO and leaves its parent as the server
// has it. The caller holds c.mu.
func (c *txConn) refuseLocked(stmts []string, err error) {
	for _, x := range c.open {
		if x.kind != kindSavepoint || txState(x.state.Load()) != txActive || !slices.Contains(stmts, "SAVEPOINT "+x.savepoint) {
			continue
		}
		x.refused = true
		x.abortErr = fmt.Errorf("piccolo: the savepoint block never began: PostgreSQL refused its SAVEPOINT "+
			"because an earlier statement had failed; end the block, then roll back to an earlier savepoint "+
			"or end the transaction: %w", err)
	}
}

// endNestedLocked ends the open blocks nested (innermost first) as rolled
// back and returns their OnRollback hooks: a joined one makes its unit
// rollback-only (its half must never be committed), a savepoint one loses
// its pending SAVEPOINT and every statement queued after it (those whose
// SAVEPOINT was sent are rolled back by the caller, or by the caller's own
// rollback). After a COMMIT or ROLLBACK sent as SQL their outcome is
// unknown and no hook runs. The caller holds c.mu, and the turn when a
// SAVEPOINT of nested was sent.
func (t *PostgresTransaction) endNestedLocked(nested []*PostgresTransaction) (hooks []func(context.Context)) {
	c := t.c
	outcome, why := txRolledBack, errEndedByEnclosing
	if c.endedBySQL {
		outcome, why = txUnknown, errEndedBySQL
	}
	for _, x := range nested {
		x.state.Store(int32(outcome))
		x.endedBy = why
		if x.kind == kindJoined {
			if u := x.unit(); u.abortErr == nil {
				u.abortErr = fmt.Errorf("a joined block inside was still open: %w", errEndedByEnclosing)
			}
			continue
		}
		hooks = append(hooks, x.takeHooks(outcome)...)
		c.forgetLocked(x)
		c.top = x.parent.unit()
	}
	return hooks
}

// endedByEnclosing returns ErrTransactionDone, saying why, when t was
// rolled back because an enclosing block ended while t was open; else nil.
func (t *PostgresTransaction) endedByEnclosing() error {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.endedBy == nil {
		return nil
	}
	return t.doneErrLocked()
}
