package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
)

// soakFigures are what the checker counted.
type soakFigures struct {
	ops, committed, failed, retried, extraRuns int
	autocommitOK, autocommitFailed             int
	ambiguousCommitted, ambiguousLost          int // ErrAmbiguousCommit resolved against the server
	unknownRan, unknownNotRun                  int // autocommit statements whose connection failed
	blocksKept, blocksRolledBack               int // savepoint blocks (fees, memos) in committed transfers
	rowsPresent, rowsLost, rowsPhantom         int
	violations                                 int
	slowest                                    time.Duration
	errClasses                                 map[string]int
	errExamples                                map[string]string // the first error of each class, with its operation
}

// soakLogRow is a row of soak_log as the server has it.
type soakLogRow struct {
	op       int64
	src, dst int
	amount   int64
}

// check compares every operation's reported outcome with the server:
// acknowledged rows present, rows of failed and retried attempts absent,
// all or nothing of each transfer, ambiguous commits resolved, hooks that
// agree, balances that match the log, and the total conserved.
func (s *soak) check(t *testing.T) soakFigures {
	t.Helper()
	present := s.logRows(t, nil)
	f := soakFigures{rowsPresent: len(present), errClasses: map[string]int{}, errExamples: map[string]string{}}
	s.checkOps(s.ops, present, &f, func(op *soakOp, format string, args ...any) {
		f.violations++
		if f.violations <= 20 {
			t.Errorf("seed %d, op %d (worker %d, %s, fault %q, %d attempt(s)): reported %s (%v): %s",
				s.seed, op.n, op.worker, opKind(op), op.fault, len(op.attempts), op.outcome, op.err, fmt.Sprintf(format, args...))
		}
	})
	written := map[int64]bool{}
	for _, op := range s.ops {
		for _, a := range op.attempts {
			written[a.transfer], written[a.fee.row], written[a.memo.row] = true, true, true
		}
	}
	for id, r := range present {
		if !written[id] {
			f.violations++
			t.Errorf("seed %d: log row %d (op %d) is on the server, but no worker wrote it", s.seed, id, r.op)
		}
	}
	s.checkBalances(t, present, &f)
	for _, b := range s.audits.broken {
		f.violations++
		t.Errorf("seed %d: a Batch that read to its end saw the accounts wrong: %s", s.seed, b)
	}
	return f
}

// checkEarly checks the operations finished since its last call whose
// outcome the server settled (all but the ambiguous ones) and reports
// whether one of them broke a rule; check reports it in full.
func (s *soak) checkEarly(t *testing.T, from int) (next int, broken bool) {
	t.Helper()
	s.mu.Lock()
	ops := s.ops[from:len(s.ops):len(s.ops)]
	s.mu.Unlock()
	settled := make([]*soakOp, 0, len(ops))
	var ids []int64
	for _, op := range ops {
		if op.outcome == outcomeAmbiguous {
			continue
		}
		settled = append(settled, op)
		for _, a := range op.attempts {
			ids = append(ids, a.transfer, a.fee.row, a.memo.row)
		}
	}
	scratch := soakFigures{errClasses: map[string]int{}, errExamples: map[string]string{}}
	s.checkOps(settled, s.logRows(t, ids), &scratch, func(*soakOp, string, ...any) { broken = true })
	return from + len(ops), broken
}

// logRows reads soak_log: the rows ids name, or every row when ids is nil.
func (s *soak) logRows(t *testing.T, ids []int64) map[int64]soakLogRow {
	t.Helper()
	q := piccolo.Querystring{SQL: "SELECT id, op, src, dst, amount FROM soak_log"}
	if ids != nil {
		q = piccolo.Querystring{SQL: q.SQL + " WHERE id = ANY($1)", Args: []any{ids}}
	}
	rows, err := s.watcher.RunQuerystring(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	present := make(map[int64]soakLogRow, len(rows))
	for _, r := range rows {
		present[r["id"].(int64)] = soakLogRow{op: r["op"].(int64), src: int(r["src"].(int32)), dst: int(r["dst"].(int32)), amount: r["amount"].(int64)}
	}
	return present
}

// checkOps checks each operation against the log rows present.
func (s *soak) checkOps(ops []*soakOp, present map[int64]soakLogRow, f *soakFigures, fail func(*soakOp, string, ...any)) {
	for _, op := range ops {
		f.ops++
		f.slowest = max(f.slowest, op.took)
		if op.outcome != outcomeCommitted {
			c := errClass(op.err)
			if f.errClasses[c]++; f.errClasses[c] == 1 {
				f.errExamples[c] = fmt.Sprintf("op %d (%s, fault %q): %v", op.n, opKind(op), op.fault, op.err)
			}
		}
		if op.autocommit {
			s.checkAutocommit(op, present, f, fail)
		} else {
			s.checkTransfer(op, present, f, fail)
		}
	}
}

// opKind describes an operation for a violation report.
func opKind(op *soakOp) string {
	if op.autocommit {
		return "autocommit log row"
	}
	if op.fault < faultStatementTimeout {
		return "transfer " + op.plan.String()
	}
	return fmt.Sprintf("transfer %s, fault applied %s: limit %v, pause %v", op.plan, op.plan.at, op.plan.limit, op.plan.pause)
}

func (s *soak) checkAutocommit(op *soakOp, present map[int64]soakLogRow, f *soakFigures, fail func(*soakOp, string, ...any)) {
	_, ran := present[op.attempts[0].transfer]
	switch op.outcome {
	case outcomeCommitted:
		f.autocommitOK++
		if !ran {
			f.rowsLost++
			fail(op, "row %d is missing: acknowledged work lost", op.attempts[0].transfer)
		}
	case outcomeFailed:
		f.autocommitFailed++
		if ran {
			f.rowsPhantom++
			fail(op, "row %d is on the server: work done while failure was reported", op.attempts[0].transfer)
		}
	case outcomeAmbiguous:
		if ran {
			f.unknownRan++
		} else {
			f.unknownNotRun++
		}
	}
}

func (s *soak) checkTransfer(op *soakOp, present map[int64]soakLogRow, f *soakFigures, fail func(*soakOp, string, ...any)) {
	if len(op.attempts) > soakAttempts {
		fail(op, "the closure ran %d times with Retry(%d)", len(op.attempts), soakAttempts)
	}
	if len(op.attempts) > 1 {
		f.retried++
		f.extraRuns += len(op.attempts) - 1
	}
	has := func(id int64) bool { _, ok := present[id]; return id != 0 && ok }
	for i, a := range op.attempts[:max(0, len(op.attempts)-1)] {
		if has(a.transfer) || has(a.fee.row) || has(a.memo.row) || a.commitHooks+a.fee.commitHooks+a.memo.commitHooks > 0 {
			f.rowsPhantom++
			fail(op, "attempt %d was retried, yet its rows (transfer %d: %v, fee %d: %v, memo %d: %v) are committed or OnCommit hooks ran (%d, %d, %d)",
				i+1, a.transfer, has(a.transfer), a.fee.row, has(a.fee.row), a.memo.row, has(a.memo.row), a.commitHooks, a.fee.commitHooks, a.memo.commitHooks)
		}
	}
	if len(op.attempts) == 0 {
		if op.outcome != outcomeFailed {
			fail(op, "the closure never ran")
		}
		f.failed++
		return
	}
	a := op.attempts[len(op.attempts)-1]
	committed := op.outcome == outcomeCommitted
	switch op.outcome {
	case outcomeCommitted:
		f.committed++
		f.blocksKept += count(a.fee.ok) + count(a.memo.ok)
		f.blocksRolledBack += count(!a.fee.ok) + count(a.memo.row != 0 && !a.memo.ok)
	case outcomeFailed:
		f.failed++
	case outcomeAmbiguous:
		committed = has(a.transfer)
		if committed {
			f.ambiguousCommitted++
		} else {
			f.ambiguousLost++
		}
	}
	if has(a.transfer) != committed {
		if committed {
			f.rowsLost++
			fail(op, "transfer row %d is missing: acknowledged work lost", a.transfer)
		} else {
			f.rowsPhantom++
			fail(op, "transfer row %d is on the server: committed while failure was reported", a.transfer)
		}
	}
	checkHooks(op, "the transaction's", a.commitHooks, committed, fail)
	for name, b := range a.blocks() {
		want := committed && b.ok
		switch {
		case has(b.row) && !want:
			f.rowsPhantom++
			fail(op, "%s row %d is on the server, but its savepoint block reported %v, and the transaction %s",
				name, b.row, b.err, map[bool]string{true: "committed", false: "did not commit"}[committed])
		case !has(b.row) && want:
			f.rowsLost++
			fail(op, "%s row %d is missing although its savepoint block and the transaction reported success", name, b.row)
		}
		checkHooks(op, "the "+name+" block's", b.commitHooks, want, fail)
	}
}

// checkHooks checks that an OnCommit hook ran once if its work committed,
// else never; after an ambiguous commit, never.
func checkHooks(op *soakOp, whose string, ran int, committed bool, fail func(*soakOp, string, ...any)) {
	want := count(committed && op.outcome != outcomeAmbiguous)
	if ran != want {
		fail(op, "%s OnCommit hook ran %d times, want %d", whose, ran, want)
	}
}

// count is 1 for true, else 0.
func count(b bool) int {
	if b {
		return 1
	}
	return 0
}

// checkBalances proves the balances are exactly what the committed log
// rows moved (no balance change without its row, nor a row without its
// change) and that the total is conserved.
func (s *soak) checkBalances(t *testing.T, present map[int64]soakLogRow, f *soakFigures) {
	t.Helper()
	want := make([]int64, soakAccounts)
	for i := range want {
		want[i] = soakInitial
	}
	for _, r := range present {
		want[r.src] -= r.amount
		want[r.dst] += r.amount
	}
	rows, err := s.watcher.RunQuerystring(context.Background(), piccolo.Querystring{SQL: "SELECT id, balance FROM soak_accounts ORDER BY id"})
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, r := range rows {
		id, got := r["id"].(int32), r["balance"].(int64)
		total += got
		if got != want[id] {
			f.violations++
			t.Errorf("seed %d: account %d holds %d, but its committed log rows say %d: a balance change without its log row, or the reverse", s.seed, id, got, want[id])
		}
	}
	if total != soakAccounts*soakInitial {
		f.violations++
		t.Errorf("seed %d: the accounts hold %d in all, want %d: money was created or lost", s.seed, total, soakAccounts*soakInitial)
	}
}

// errClass names the kind of error an operation got, for the figures.
func errClass(err error) string {
	var pgErr *pgconn.PgError
	var connErr *pgconn.ConnectError
	switch {
	case errors.Is(err, piccolo.ErrAmbiguousCommit):
		return "ErrAmbiguousCommit"
	case errors.Is(err, piccolo.ErrCommitRolledBack):
		return "ErrCommitRolledBack"
	case errors.As(err, &connErr):
		return "connect"
	case errors.As(err, &pgErr):
		return "SQLSTATE " + pgErr.Code
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline exceeded"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, piccolo.ErrTransactionDone):
		return "ErrTransactionDone"
	}
	if errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "conn closed") {
		return "conn closed"
	}
	return "other"
}

// report logs the figures; rows lost must be 0.
func (f soakFigures) report(t *testing.T, s *soak, elapsed time.Duration) {
	t.Helper()
	t.Logf("seed %d: %d operations in %v (slowest %v), %d log rows committed", s.seed, f.ops, elapsed.Round(time.Millisecond), f.slowest.Round(time.Millisecond), f.rowsPresent)
	t.Logf("transfers: %d acknowledged (savepoint blocks in them: %d kept, %d rolled back alone), %d failed, %d retried (%d extra runs)",
		f.committed, f.blocksKept, f.blocksRolledBack, f.failed, f.retried, f.extraRuns)
	t.Logf("ambiguous commits resolved against the server: %d committed, %d not committed; autocommit rows: %d acknowledged, %d failed, %d unknown that ran, %d unknown that did not",
		f.ambiguousCommitted, f.ambiguousLost, f.autocommitOK, f.autocommitFailed, f.unknownRan, f.unknownNotRun)
	var faults []string
	for k := faultKind(1); k < numFaults; k++ {
		faults = append(faults, fmt.Sprintf("%s %d", k, s.injected[k].Load()))
	}
	t.Logf("faults injected: %s; %d backends terminated", strings.Join(faults, ", "), s.killed.Load())
	t.Logf("audits (Batch streams of every account): %d read whole and balanced, %d failed under the faults", s.audits.whole.Load(), s.audits.failed.Load())
	classes := make([]string, 0, len(f.errClasses))
	for c := range f.errClasses {
		classes = append(classes, c)
	}
	slices.SortFunc(classes, func(a, b string) int { return f.errClasses[b] - f.errClasses[a] })
	for i, c := range classes {
		classes[i] = fmt.Sprintf("%s %d", c, f.errClasses[c])
	}
	t.Logf("errors reported: %s", strings.Join(classes, "; "))
	if testing.Verbose() {
		for c, ex := range f.errExamples {
			t.Logf("  first %s: %s", c, ex)
		}
	}
	t.Logf("rows lost: %d; rows of failed or retried work present: %d; violations: %d", f.rowsLost, f.rowsPhantom, f.violations)
	for k := faultKind(1); k < numFaults; k++ {
		if s.injected[k].Load() == 0 && *soakDuration == 0 {
			t.Logf("note: no %q fault was injected in this run", k)
		}
	}
}
