package txmodel

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func tx(mode Nest, end End, body ...Op) Op { return Op{Kind: Tx, Mode: mode, End: end, Body: body} }
func ins(row int) Op                       { return Op{Kind: Insert, Row: row} }

// retryTx is a Transaction with Retry and FailoverBudget (rule 14).
func retryTx(end End, body ...Op) Op {
	return Op{Kind: Tx, Mode: NestJoin, End: end, Body: body, Retry: true}
}

var kill = Op{Kind: Kill}

// TestModelStatesTheRules pins the model's answer for the rules it states,
// so that a change to the model is a deliberate change of semantics.
func TestModelStatesTheRules(t *testing.T) {
	for _, tc := range []struct {
		name      string
		p         Program
		committed []int
		last      Class  // the error of the result at path, else of the last
		path      string // "1.2" is op 2 of op 1's body
	}{
		{"nil commits", Program{tx(NestJoin, ReturnNil, ins(1))}, []int{0, 1}, OK, ""},
		{"error rolls back", Program{tx(NestJoin, ReturnErr, ins(1))}, []int{0}, Boom, ""},
		{"a swallowed server error makes COMMIT roll back",
			Program{tx(NestJoin, ReturnNil, ins(1), Op{Kind: DivZero})}, []int{0}, CommitRolledBack, ""},
		{"a failed joined block makes the outer commit roll back",
			Program{tx(NestJoin, ReturnNil, ins(1), tx(NestJoin, ReturnErr, ins(2)), ins(3))}, []int{0}, CommitRolledBack, ""},
		{"a savepoint block rolls back alone, server error included",
			Program{tx(NestJoin, ReturnNil, ins(1), tx(NestSavepoint, ReturnNil, ins(2), Op{Kind: InsertDup}), ins(3))}, []int{0, 1, 3}, OK, ""},
		{"a savepoint block whose ctx ended is not committed",
			Program{tx(NestJoin, ReturnNil, ins(1), tx(NestSavepoint, ReturnNil, ins(2), Op{Kind: Cancel}))}, []int{0, 1}, OK, ""},
		{"NestRefuse refuses inside a transaction",
			Program{tx(NestJoin, ReturnNil, ins(1), tx(NestRefuse, ReturnNil, ins(2)))}, []int{0, 1}, OK, ""},
		{"rule 1: a sibling savepoint block is refused",
			Program{tx(NestJoin, ReturnNil, tx(NestSavepoint, ReturnNil, Op{Kind: Tx, Mode: NestSavepoint, Outer: true, Body: []Op{ins(1)}}))}, []int{0}, Nested, "1.1.1"},
		{"a statement after the transaction ended is refused, not autocommitted",
			Program{tx(NestJoin, ReturnNil, Op{Kind: Commit}, ins(1))}, []int{0}, OK, ""},
		{"rule 2: a statement outside the open savepoint block is refused",
			Program{tx(NestJoin, ReturnNil, tx(NestSavepoint, ReturnNil, Op{Kind: Insert, Row: 1, Outer: true}))}, []int{0}, Busy, "1.1.1"},
		{"rule 3: an outer Commit rolls back the savepoint block open inside",
			Program{tx(NestJoin, ReturnNil, ins(1), tx(NestSavepoint, ReturnNil, ins(2), Op{Kind: Commit, Outer: true}))}, []int{0, 1}, TxDone, "1.2"},
		{"rule 3: an outer Commit with a joined block open inside rolls back",
			Program{tx(NestJoin, ReturnNil, ins(1), tx(NestJoin, ReturnNil, Op{Kind: Commit, Outer: true}))}, []int{0}, TxDone, "1.2"},
		{"rule 6: a joined Commit in a rollback-only unit rolls back",
			Program{tx(NestJoin, ReturnNil, Op{Kind: Begin, Mode: NestJoin, End: CommitEnd, Body: []Op{tx(NestJoin, ReturnErr)}})}, []int{0}, CommitRolledBack, "1.1.end"},
		{"rule 10 cannot happen: a COMMIT sent as SQL is refused, the transaction goes on",
			Program{tx(NestJoin, ReturnNil, ins(1), tx(NestSavepoint, ReturnNil, ins(2), Op{Kind: SQLCommit}, ins(3)))}, []int{0, 1, 2, 3}, TxControl, "1.2.2"},
		{"an Atomic refuses transaction control before any I/O",
			Program{tx(NestJoin, ReturnNil, ins(1), Op{Kind: Atomic, Items: []Item{{Kind: Insert, Row: 2}, {Kind: SQLCommit}}})}, []int{0, 1}, TxControl, "1.2"},
		{"rule 11: a hook runs its query although the Commit's ctx ended",
			Program{tx(NestJoin, ReturnNil, ins(1), Op{Kind: OnRollback, Ref: 1, Row: 2}, Op{Kind: Commit, Expired: true})}, []int{0, 2}, CommitRolledBack | Deadline, "1.3"},
		{"rule 12: a savepoint block refused in an aborted transaction ends alone, and RollbackTo still recovers",
			Program{tx(NestJoin, ReturnNil, Op{Kind: Savepoint, Ref: 1, Name: "a"}, ins(1), Op{Kind: DivZero},
				tx(NestSavepoint, ReturnErr, ins(2), ins(4)), Op{Kind: RollbackToName, Name: "a"}, ins(3))}, []int{0, 3}, Boom, "1.4"},
		{"rule 12: a statement through a refused savepoint block is refused",
			Program{tx(NestJoin, ReturnNil, ins(1), Op{Kind: DivZero},
				tx(NestSavepoint, ReturnNil, ins(2), Op{Kind: RollbackToName, Name: "a"}))}, []int{0}, TxDone, "1.3.2"},
		{"rule 12: a refused savepoint block's Commit rolls back",
			Program{tx(NestJoin, ReturnNil, ins(1), Op{Kind: DivZero},
				Op{Kind: Begin, Mode: NestSavepoint, End: CommitEnd, Body: []Op{ins(2)}})}, []int{0}, CommitRolledBack, "1.3.end"},
		{"rule 14: a connection lost before COMMIT under Retry runs the closure again, which commits",
			Program{retryTx(ReturnNil, ins(1), kill, ins(2))}, []int{0, 1, 2}, OK, ""},
		{"rule 14: the statement after the kill fails",
			Program{retryTx(ReturnErr, ins(1), kill, ins(2))}, []int{0}, AnyErr, "1.3"},
		{"rule 14: the closure's own error after the kill comes back, not re-run",
			Program{retryTx(ReturnErr, ins(1), kill)}, []int{0}, Boom, ""},
		{"rule 14: without Retry the lost connection's rollback comes back",
			Program{tx(NestJoin, ReturnNil, ins(1), kill, ins(2))}, []int{0}, CommitRolledBack, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := Run(tc.p)
			if !slices.Equal(out.Committed, tc.committed) {
				t.Errorf("committed %v, want %v\n%s", out.Committed, tc.committed, tc.p)
			}
			r := out.Results[len(out.Results)-1]
			for _, x := range out.Results {
				if x.Path == tc.path {
					r = x
				}
			}
			if r.Err != tc.last {
				t.Errorf("call %s: %s, want %s", r.Path, r.Err, tc.last)
			}
		})
	}
}

// TestModelKillBeforeBeginRunsOnce pins rule 14's other half: a session
// that ends before the transaction began loses nothing, and the closure
// runs once.
func TestModelKillBeforeBeginRunsOnce(t *testing.T) {
	out := Run(Program{retryTx(ReturnNil, kill, ins(1))})
	if len(out.Results) != 3 || !slices.Equal(out.Committed, []int{0, 1}) {
		t.Errorf("results %v, committed %v: want one run that commits row 1", out.Results, out.Committed)
	}
}

// TestModelHooks pins when hooks run: a rolled-back savepoint block's
// OnRollback at once, its OnCommit never; the rest at the outer end.
func TestModelHooks(t *testing.T) {
	p := Program{tx(NestJoin, ReturnNil,
		Op{Kind: OnCommit, Ref: 1},
		tx(NestSavepoint, ReturnErr, ins(1), Op{Kind: OnCommit, Ref: 2}, Op{Kind: OnRollback, Ref: 3}),
		tx(NestSavepoint, ReturnNil, ins(2), Op{Kind: OnCommit, Ref: 4}),
	)}
	out := Run(p)
	if got := out.Results[len(out.Results)-1].Hooks; got != "r3 c1 c4" {
		t.Errorf("hooks %q, want \"r3 c1 c4\"", got)
	}
}

// TestModelBatchOutlivesReleasedBlock pins defect 7's rule: a batch
// opened in a savepoint block that released goes on; its cursor counts.
func TestModelBatchOutlivesReleasedBlock(t *testing.T) {
	p := Program{tx(NestJoin, ReturnNil, ins(1),
		tx(NestSavepoint, ReturnNil, Op{Kind: BatchOpen, Ref: 1}),
		Op{Kind: BatchNext, Ref: 1},
		Op{Kind: CountCursors},
		Op{Kind: BatchNext, Ref: 1},
		Op{Kind: CountCursors},
	)}
	out := Run(p)
	var values []string
	for _, r := range out.Results {
		if r.Value != "" {
			values = append(values, r.Value)
		}
	}
	if want := []string{"[0 1]", "0"}; !slices.Equal(values[:2], want) {
		t.Errorf("values %v, want %v first", values, want)
	}
}

// TestGenerateIsReproducible: a seed is a program.
func TestGenerateIsReproducible(t *testing.T) {
	cfg := Config{Ops: 20, Depth: 3}
	a := Generate(rand.New(rand.NewPCG(7, 0)), cfg).String()
	b := Generate(rand.New(rand.NewPCG(7, 0)), cfg).String()
	if a != b || a == "" {
		t.Fatalf("seed 7 gave two programs:\n%s\n%s", a, b)
	}
}

// TestSmallerDropsEachOperation: shrinking offers every one-op deletion.
func TestSmallerDropsEachOperation(t *testing.T) {
	p := Program{ins(1), tx(NestJoin, ReturnNil, ins(2), ins(3))}
	if n := len(Smaller(p)); n != 4 {
		t.Fatalf("%d candidates, want 4 (two top-level ops, two in the body)", n)
	}
}
