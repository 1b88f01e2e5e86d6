package piccolo

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

var (
	// ErrNestedTransaction is returned by Transaction and Begin with
	// Nesting(NestRefuse) when the context already carries a transaction of
	// the same engine, and with Nesting(NestSavepoint) when another
	// NestSavepoint block of the transaction is open and the new block
	// would not be inside it. No I/O has happened.
	ErrNestedTransaction = errors.New("piccolo: a transaction is already running in this context")

	// ErrTransactionDone is returned for any use of a transaction after it
	// committed or rolled back, and for statements in a transaction that was
	// marked rollback-only because a joined block failed (or a savepoint
	// block could not be rolled back). The statement was not sent: nothing
	// runs in autocommit behind the caller's back.
	ErrTransactionDone = errors.New("piccolo: transaction has already been committed or rolled back")

	// ErrCommitRolledBack is returned by Commit when PostgreSQL rolled the
	// transaction back instead (an error inside it was swallowed, a joined
	// block failed, or a deferred constraint failed). The work is lost.
	ErrCommitRolledBack = errors.New("piccolo: commit failed: the transaction was rolled back")

	// ErrAmbiguousCommit is returned when the connection failed after COMMIT
	// was sent: the transaction may or may not have committed. It is never
	// retried, and neither OnCommit nor OnRollback hooks run. The caller
	// must resolve the outcome (look for a row the transaction wrote, or a
	// unique key it used), then act on it: do the hooks' work, or run the
	// transaction again.
	ErrAmbiguousCommit = errors.New("piccolo: connection lost during commit: outcome unknown")

	// ErrConnBusy is returned, before anything is sent, for a statement
	// (or a Commit or Rollback that needs the connection) that the
	// transaction's connection cannot take now; the wrapped message says
	// which case it is:
	//   - it was called from inside a scan callback (QueryFunc,
	//     Batch.NextFunc) with that callback's own transaction: the callback
	//     runs while the statement holds the connection, so waiting would
	//     hang for ever. Collect the rows first, then run the statements.
	//     Hooks and nested blocks need no connection and work there.
	//   - a NestSavepoint block of the transaction is open and the
	//     statement's context carries a handle outside it (the outer context,
	//     captured by a closure or used by another goroutine): on the server
	//     the statement would run inside the block's savepoint, and the
	//     block's rollback would undo it. Run it inside the block, with the
	//     block's context, or after the block ends. Reading or closing a
	//     Batch opened outside the block is allowed.
	ErrConnBusy = errors.New("piccolo: the transaction's connection cannot take this statement now; it was not sent")

	// ErrInvalidSavepointName is returned for savepoint names that are not
	// letters, digits and underscores starting with a letter or underscore,
	// at most 63 bytes long.
	ErrInvalidSavepointName = errors.New("piccolo: invalid savepoint name")

	// ErrInvalidIdentifier is returned for names that cannot be quoted
	// safely as SQL identifiers: empty, with a NUL byte, not UTF-8, or longer
	// than 63 bytes.
	ErrInvalidIdentifier = errors.New("piccolo: invalid identifier")

	// ErrUnknownNode is returned when OnNode names a node that is not in
	// PostgresConfig.ExtraNodes.
	ErrUnknownNode = errors.New("piccolo: unknown node")

	// ErrEngineClosed is returned by every call that would run something on
	// an engine after its Close: create a new engine instead.
	ErrEngineClosed = errors.New("piccolo: the engine is closed")

	// ErrNoPool is returned by CloseConnectionPool and DB when no pool is
	// running.
	ErrNoPool = errors.New("piccolo: no connection pool is running")

	// ErrTransactionControl is returned, before any I/O, for SQL that would
	// control a transaction the engine manages: BEGIN, COMMIT, ROLLBACK and
	// their kin inside a transaction (a COMMIT in a script would commit the
	// work so far and run the rest in autocommit), and any of them, savepoint
	// statements included, in a query queued on an Atomic. Use Commit,
	// Rollback and Savepoint, or run the script outside a transaction.
	ErrTransactionControl = errors.New("piccolo: SQL that controls the transaction is refused here")

	// ErrBatchClosed is returned by Batch.Next after Close (unless the rows
	// had run out: then Next keeps returning an empty slice), or after the
	// batch ended with an error.
	ErrBatchClosed = errors.New("piccolo: batch is closed")
)

// AtomicError reports which queued query of an Atomic failed. The whole
// Atomic was rolled back (or, inside an outer transaction, that transaction
// was marked rollback-only).
type AtomicError struct {
	Index int   // 0-based position of the failing query in the order of Add
	Err   error // the cause; *pgconn.PgError is reachable through errors.As
}

// Error implements error.
func (e *AtomicError) Error() string {
	return fmt.Sprintf("piccolo: Atomic: query #%d (Index %d) failed: %s", e.Index+1, e.Index, causeText(e.Err))
}

// Unwrap returns the cause.
func (e *AtomicError) Unwrap() error { return e.Err }

// StatementError is a statement that failed: its SQL, the extra node it
// ran on ("" for the engine's own server), and the cause. Exec, QueryFunc,
// RunQuerystring, RunDDL, Batch and Atomic (inside its *AtomicError) return
// it; *pgconn.PgError and the engine's sentinels stay reachable through
// errors.As and errors.Is. Its text names the statement once, readably:
//
//	piccolo: node "r1": SELECT "id" FROM "band": ERROR: ... (SQLSTATE 42P01)
type StatementError struct {
	SQL  string // the statement as sent
	Node string // the extra node it ran on; "" for the engine's own server
	Err  error  // the cause
}

// maxErrorSQL bounds how much of a statement an error's text shows.
const maxErrorSQL = 120

// Error implements error. Long SQL is cut, runs of white space become one
// space.
func (e *StatementError) Error() string {
	sql := strings.Join(strings.Fields(e.SQL), " ")
	if len(sql) > maxErrorSQL {
		cut := maxErrorSQL
		for cut > 0 && !utf8.RuneStart(sql[cut]) {
			cut--
		}
		sql = sql[:cut] + "…"
	}
	where := ""
	if e.Node != "" {
		where = fmt.Sprintf("node %q: ", e.Node)
	}
	return "piccolo: " + where + sql + ": " + causeText(e.Err)
}

// Unwrap returns the cause.
func (e *StatementError) Unwrap() error { return e.Err }

// RetryError is what Transaction returns when Retry gave up: every run of
// the closure failed with an error Retry re-runs, the last of which is
// Err. Failover says which kind that last one was: false, a serialization
// failure or deadlock (40001, 40P01), after Retry's attempts ran out; true,
// a failure of the node before COMMIT was sent (see FailoverBudget), after
// the failover budget ran out. Running the transaction later may succeed.
type RetryError struct {
	Attempts int           // how many times the transaction was tried (the closure ran, or no connection could be had)
	Failover bool          // the last failure was the node's, not a conflict
	Waited   time.Duration // how long Transaction waited between runs, in all
	Err      error         // the last attempt's error
}

// Error implements error.
func (e *RetryError) Error() string {
	kind := "serialization failure or deadlock"
	if e.Failover {
		kind = "failover: the node failed before COMMIT was sent"
	}
	return fmt.Sprintf("piccolo: transaction failed after %d attempts (%s; waited %v): %s",
		e.Attempts, kind, e.Waited.Round(time.Millisecond), causeText(e.Err))
}

// Unwrap returns the last attempt's error.
func (e *RetryError) Unwrap() error { return e.Err }

// causeText is err's text for an error that wraps it and says "piccolo: "
// itself: one prefix per chain.
func causeText(err error) string {
	return strings.TrimPrefix(err.Error(), "piccolo: ")
}

// wrapErr wraps err with what was being done, keeping one "piccolo: " at
// the head of the text.
func wrapErr(what string, err error) error {
	return &wrapped{what: what, err: err}
}

type wrapped struct {
	what string
	err  error
}

func (w *wrapped) Error() string { return "piccolo: " + w.what + ": " + causeText(w.err) }
func (w *wrapped) Unwrap() error { return w.err }
