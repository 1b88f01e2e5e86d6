package piccolo

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Rule 14's bookkeeping: failures of the node are re-run until the budget
// runs out and do not count against Retry's attempts, which stay for
// serialization failures and deadlocks; what is not the node's failure
// (an ambiguous commit, a context that ended, a transaction not known to
// be rolled back, a run without FailoverBudget) comes back at once.
func TestRule14RetrierCountsConflictsNotFailovers(t *testing.T) {
	bg := context.Background()
	conflict := &pgconn.PgError{Code: "40001"}
	terminated := &pgconn.PgError{Code: "57P01"}
	lost := lostConn{errors.New("conn closed")}
	readOnly := readOnlyNode{&pgconn.PgError{Code: "25006"}}
	failed := func(err error) run { return run{err: err, cause: err, rolledBack: true} }

	r := retrier{maxAttempts: 2, budget: time.Hour}
	for i, err := range []error{terminated, conflict, lost, readOnly} {
		if _, done, got := r.next(bg, failed(err)); done {
			t.Fatalf("run %d (%v) was not re-run: %v", i+1, err, got)
		}
	}
	_, done, err := r.next(bg, failed(conflict))
	var re *RetryError
	if !done || !errors.As(err, &re) || re.Attempts != 5 || re.Failover || !errors.Is(err, conflict) {
		t.Fatalf("the second conflict: done %v, %v; want a conflict *RetryError after 5 runs", done, err)
	}

	r = retrier{maxAttempts: 5, budget: time.Minute}
	if _, done, _ := r.next(bg, failed(lost)); done {
		t.Fatal("the first failover was not re-run")
	}
	r.firstFail = r.firstFail.Add(-time.Minute) // as if the failover had lasted a minute
	if _, done, err := r.next(bg, failed(lost)); !done || !errors.As(err, &re) || !re.Failover {
		t.Fatalf("after the budget: done %v, %v; want a failover *RetryError", done, err)
	}

	cancelled, cancel := context.WithCancel(bg)
	cancel()
	ambiguous := fmt.Errorf("%w: %w", ErrAmbiguousCommit, lost)
	for name, c := range map[string]struct {
		r   retrier
		ctx context.Context
		run run
	}{
		"ambiguous commit":    {retrier{maxAttempts: 3, budget: time.Hour}, bg, failed(ambiguous)},
		"ctx ended":           {retrier{maxAttempts: 3, budget: time.Hour}, cancelled, failed(lost)},
		"not rolled back":     {retrier{maxAttempts: 3, budget: time.Hour}, bg, run{err: lost, cause: lost}},
		"no FailoverBudget":   {retrier{maxAttempts: 3}, bg, failed(terminated)},
		"the closure's error": {retrier{maxAttempts: 3, budget: time.Hour}, bg, run{err: errors.Join(errBoomInternal, lost), cause: errBoomInternal, rolledBack: true}},
		"a deadline of its own": {retrier{maxAttempts: 3, budget: time.Hour}, bg,
			failed(lostConn{fmt.Errorf("timeout: %w", context.DeadlineExceeded)})},
	} {
		if _, done, err := c.r.next(c.ctx, c.run); !done || err != c.run.err {
			t.Errorf("%s: done %v, %v; want the run's error back at once", name, done, err)
		}
	}
}

var errBoomInternal = errors.New("boom")
