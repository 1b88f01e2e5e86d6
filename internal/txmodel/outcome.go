package txmodel

import (
	"fmt"
	"strings"
)

// Class is a set of error classes. The model's expectation is a set of
// acceptable classes; an observed error has every class it satisfies by
// errors.Is / errors.As. They match when the sets meet.
type Class uint32

// The error classes.
const (
	OK               Class = 1 << iota // nil
	TxDone                             // ErrTransactionDone
	CommitRolledBack                   // ErrCommitRolledBack
	Nested                             // ErrNestedTransaction
	BatchClosed                        // ErrBatchClosed
	Canceled                           // context.Canceled
	Deadline                           // context.DeadlineExceeded
	Boom                               // the error the program's closure returned
	Panicked                           // the closure's panic came back out
	Unique                             // *pgconn.PgError 23505 unique_violation
	DivByZero                          // 22012 division_by_zero
	InFailedTx                         // 25P02 in_failed_sql_transaction
	NoSavepoint                        // 3B001 invalid_savepoint_specification
	NoCursor                           // 34000 invalid_cursor_name
	Busy                               // ErrConnBusy
	TxControl                          // ErrTransactionControl
	AnyErr                             // any error: the documented API does not say which
)

var classNames = []string{"nil", "ErrTransactionDone", "ErrCommitRolledBack", "ErrNestedTransaction",
	"ErrBatchClosed", "context.Canceled", "context.DeadlineExceeded", "errBoom", "panic",
	"pg 23505", "pg 22012", "pg 25P02", "pg 3B001", "pg 34000", "ErrConnBusy", "ErrTransactionControl", "an error"}

// String lists the classes, "|" between alternatives.
func (c Class) String() string {
	var parts []string
	for i, n := range classNames {
		if c&(1<<i) != 0 {
			parts = append(parts, n)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "|")
}

// Matches reports whether an observed error with classes got is one the
// expectation c accepts.
func (c Class) Matches(got Class) bool {
	if c&AnyErr != 0 && got&OK == 0 {
		return true
	}
	return c&got&^AnyErr != 0
}

// Result is what one call returned and what the program saw right after it.
type Result struct {
	Path   string // the operation's position: "2.1.3" is op 3 in op 1's body in op 2's body
	Op     Kind
	Err    Class  // expected: acceptable classes; observed: every class the error has
	Atomic int    // index of the failing query in an *AtomicError; -1: none expected (not compared)
	Value  string // rows a batch returned, the cursor count; "" when none
	// The handle of the block the operation ended (a Tx or Begin) or ran
	// in, and TransactionExists for the ctx the operation ran with.
	Committed, RolledBack, Exists bool
	Hooks                         string // the hooks that have run so far, in order
	Skipped                       bool   // the operation named a handle that was never created
}

// Diff returns "" when the observed result got matches the expected one
// want, else what differs.
func Diff(want, got Result) string {
	var d []string
	if want.Path != got.Path || want.Op != got.Op {
		return fmt.Sprintf("the programs diverged: model at op %s, engine at op %s", want.Path, got.Path)
	}
	if want.Skipped != got.Skipped {
		return fmt.Sprintf("skipped: model %v, engine %v", want.Skipped, got.Skipped)
	}
	if !want.Err.Matches(got.Err) {
		d = append(d, fmt.Sprintf("error: want %s, got %s", want.Err, got.Err))
	}
	if want.Atomic >= 0 && want.Atomic != got.Atomic {
		d = append(d, fmt.Sprintf("AtomicError.Index: want %d, got %d", want.Atomic, got.Atomic))
	}
	if want.Value != got.Value {
		d = append(d, fmt.Sprintf("value: want %q, got %q", want.Value, got.Value))
	}
	if want.Committed != got.Committed || want.RolledBack != got.RolledBack {
		d = append(d, fmt.Sprintf("Committed/RolledBack: want %v/%v, got %v/%v", want.Committed, want.RolledBack, got.Committed, got.RolledBack))
	}
	if want.Exists != got.Exists {
		d = append(d, fmt.Sprintf("TransactionExists: want %v, got %v", want.Exists, got.Exists))
	}
	if want.Hooks != got.Hooks {
		d = append(d, fmt.Sprintf("hooks run: want [%s], got [%s]", want.Hooks, got.Hooks))
	}
	return strings.Join(d, "; ")
}

// Outcome is everything a program's run showed.
type Outcome struct {
	Results   []Result
	Committed []int // the program's committed rows, ascending
}
