package txmodel

import "math/rand/v2"

// GenerateGoroutine returns the operations of one of two goroutines that
// share a transaction's ctx: inserts, hooks, and blocks of them, joined or
// (with savepoints) savepoint blocks that may fail inside and return an
// error. Nothing fails outside a savepoint block, so that one goroutine's
// failure cannot reach the other's statements. rows numbers the rows, so
// that the two goroutines' rows differ. Rows and hooks are numbered from
// base+1.
//
// With savepoints but without outerWork, a goroutine works only inside
// savepoint blocks: its statements never run through the shared ctx while
// the other goroutine may have a savepoint block open.
func GenerateGoroutine(r *rand.Rand, ops int, savepoints, outerWork bool, base int) []Op {
	g := &gen{r: r, rows: base, hooks: base}
	out := make([]Op, 0, ops)
	for range ops {
		out = append(out, g.concurrentOp(savepoints, outerWork || !savepoints, 0))
	}
	return out
}

func (g *gen) concurrentOp(savepoints, outerWork bool, depth int) Op {
	sp, blocks, work := 0, 0, 5
	if savepoints && depth == 0 {
		sp = 3
	}
	if depth == 0 {
		blocks = 2
	}
	if depth == 0 && !outerWork {
		blocks, work = 0, 0
	}
	switch g.weighted(work, 1, 1, blocks, sp, 2*sp/3*min(depth, 1)) {
	case 1:
		g.hooks++
		return Op{Kind: OnCommit, Ref: g.hooks}
	case 2:
		g.hooks++
		return Op{Kind: OnRollback, Ref: g.hooks}
	case 3, 4:
		op := Op{Kind: Tx, Mode: NestJoin}
		n := 1 + g.r.IntN(3)
		if !outerWork || g.r.IntN(5) < sp { // a savepoint block, which may fail
			op.Mode, op.End = NestSavepoint, End(g.weighted(4, 1))
		}
		for range n {
			op.Body = append(op.Body, g.concurrentOp(savepoints && op.Mode == NestSavepoint, true, depth+1))
		}
		return op
	case 5:
		return Op{Kind: InsertDup}
	}
	g.rows++
	return Op{Kind: Insert, Row: g.rows}
}

// Refused reports whether a concurrent goroutine's operation came back
// refused with ErrNestedTransaction (and did nothing): the other goroutine
// had a savepoint block open.
func Refused(r Result) bool { return r.Err&Nested != 0 }

// Without returns ops without the operations that refused says were
// refused, walking them in the order their results were recorded.
func Without(ops []Op, results []Result, refused func(Result) bool) []Op {
	i := 0
	var walk func([]Op) []Op
	walk = func(ops []Op) []Op {
		var out []Op
		for _, op := range ops {
			if op.Kind == Tx {
				// Its result comes after its body's, which holds no Tx; a
				// refused block has no body results.
				if i < len(results) && results[i].Op == Tx && refused(results[i]) {
					i++
					continue
				}
				op.Body = walk(op.Body)
				i++
				out = append(out, op)
				continue
			}
			if i < len(results) && refused(results[i]) {
				i++
				continue
			}
			i++
			out = append(out, op)
		}
		return out
	}
	return walk(ops)
}
