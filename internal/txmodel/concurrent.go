package txmodel

import "math/rand/v2"

// GenerateGoroutine returns the operations of one of two goroutines that
// share a transaction's ctx: inserts, hooks, and blocks of them, joined or
// savepoint blocks that may fail inside and return an error. Nothing fails
// outside a savepoint block, so that one goroutine's failure cannot reach
// the other's statements; while the other goroutine has a savepoint block
// open, statements through the shared ctx are refused (rule 2), and so is
// a savepoint block of this one (rule 1). Rows and hooks are numbered from
// base+1, so that the two goroutines' differ.
func GenerateGoroutine(r *rand.Rand, ops int, base int) []Op {
	g := &gen{r: r, rows: base, hooks: base}
	out := make([]Op, 0, ops)
	for range ops {
		out = append(out, g.concurrentOp(0, false))
	}
	return out
}

func (g *gen) concurrentOp(depth int, inSavepoint bool) Op {
	blocks, fails := 0, 0
	if depth == 0 {
		blocks = 3
	}
	if inSavepoint {
		fails = 2
	}
	switch g.weighted(5, 1, 1, blocks, fails) {
	case 1:
		g.hooks++
		return Op{Kind: OnCommit, Ref: g.hooks}
	case 2:
		g.hooks++
		return Op{Kind: OnRollback, Ref: g.hooks}
	case 3:
		op := Op{Kind: Tx, Mode: NestJoin}
		if g.r.IntN(5) < 3 { // a savepoint block, which may fail
			op.Mode, op.End = NestSavepoint, End(g.weighted(4, 1))
		}
		for range 1 + g.r.IntN(3) {
			op.Body = append(op.Body, g.concurrentOp(depth+1, op.Mode == NestSavepoint))
		}
		return op
	case 4:
		return Op{Kind: InsertDup}
	}
	g.rows++
	return Op{Kind: Insert, Row: g.rows}
}

// Refused reports whether a concurrent goroutine's operation came back
// refused, having done nothing, because the other goroutine had a
// savepoint block open: ErrNestedTransaction (rule 1) or ErrConnBusy
// (rule 2).
func Refused(r Result) bool { return r.Err&(Nested|Busy) != 0 }

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
