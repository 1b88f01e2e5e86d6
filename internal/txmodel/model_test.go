package txmodel

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func tx(mode Nest, end End, body ...Op) Op { return Op{Kind: Tx, Mode: mode, End: end, Body: body} }
func ins(row int) Op                       { return Op{Kind: Insert, Row: row} }

// TestModelStatesTheRules pins the model's answer for the rules it states,
// so that a change to the model is a deliberate change of semantics.
func TestModelStatesTheRules(t *testing.T) {
	for _, tc := range []struct {
		name      string
		p         Program
		committed []int
		last      Class // the last result's error
	}{
		{"nil commits", Program{tx(NestJoin, ReturnNil, ins(1))}, []int{0, 1}, OK},
		{"error rolls back", Program{tx(NestJoin, ReturnErr, ins(1))}, []int{0}, Boom},
		{"a swallowed server error makes COMMIT roll back",
			Program{tx(NestJoin, ReturnNil, ins(1), Op{Kind: DivZero})}, []int{0}, CommitRolledBack},
		{"a failed joined block makes the outer commit roll back",
			Program{tx(NestJoin, ReturnNil, ins(1), tx(NestJoin, ReturnErr, ins(2)), ins(3))}, []int{0}, CommitRolledBack},
		{"a savepoint block rolls back alone, server error included",
			Program{tx(NestJoin, ReturnNil, ins(1), tx(NestSavepoint, ReturnNil, ins(2), Op{Kind: InsertDup}), ins(3))}, []int{0, 1, 3}, OK},
		{"a savepoint block whose ctx ended is not committed",
			Program{tx(NestJoin, ReturnNil, ins(1), tx(NestSavepoint, ReturnNil, ins(2), Op{Kind: Cancel}))}, []int{0, 1}, OK},
		{"NestRefuse refuses inside a transaction",
			Program{tx(NestJoin, ReturnNil, ins(1), tx(NestRefuse, ReturnNil, ins(2)))}, []int{0, 1}, OK},
		{"a sibling savepoint block is refused",
			Program{tx(NestJoin, ReturnNil, tx(NestSavepoint, ReturnNil, Op{Kind: Tx, Mode: NestSavepoint, Outer: true, Body: []Op{ins(1)}}))}, []int{0}, OK},
		{"a statement after the transaction ended is refused, not autocommitted",
			Program{tx(NestJoin, ReturnNil, Op{Kind: Commit}, ins(1))}, []int{0}, OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := Run(tc.p, Deviations{})
			if !slices.Equal(out.Committed, tc.committed) {
				t.Errorf("committed %v, want %v\n%s", out.Committed, tc.committed, tc.p)
			}
			if last := out.Results[len(out.Results)-1]; last.Err != tc.last {
				t.Errorf("last call %s, want %s", last.Err, tc.last)
			}
		})
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
	out := Run(p, Deviations{})
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
	out := Run(p, Deviations{})
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
	cfg := Config{Ops: 20, Depth: 3, Outer: true}
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
