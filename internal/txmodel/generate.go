package txmodel

import "math/rand/v2"

// Config sizes and shapes generated programs.
type Config struct {
	Ops   int // operations per program, nested ones included (at most)
	Depth int // nesting depth of blocks (at most)
}

// Generate returns a random program drawn from r.
func Generate(r *rand.Rand, cfg Config) Program {
	g := &gen{r: r, cfg: cfg, budget: cfg.Ops}
	var p Program
	for g.budget > 0 {
		if g.r.IntN(60) == 0 { // rare: each costs a connection
			p = append(p, g.killTx())
			continue
		}
		p = append(p, g.op(0))
	}
	return p
}

// killTx draws a Transaction with Retry and FailoverBudget whose closure
// runs statements and kills its own connection once (rule 14). Only
// statements: what a lost connection does to savepoint blocks, batches and
// hooks is not the rule's business.
func (g *gen) killTx() Op {
	op := Op{Kind: Tx, Mode: NestJoin, Retry: true, End: End(g.weighted(6, 2, 1))}
	n := g.r.IntN(4) + 1
	kill := g.r.IntN(n + 1)
	for i := range n + 1 {
		g.budget--
		if i == kill {
			op.Body = append(op.Body, Op{Kind: Kill})
			continue
		}
		switch g.weighted(6, 1, 1, 1) {
		case 0:
			op.Body = append(op.Body, Op{Kind: Insert, Row: g.row()})
		case 1:
			op.Body = append(op.Body, Op{Kind: InsertDup})
		case 2:
			op.Body = append(op.Body, Op{Kind: DivZero})
		default:
			op.Body = append(op.Body, Op{Kind: CountCursors})
		}
	}
	return op
}

type gen struct {
	r      *rand.Rand
	cfg    Config
	budget int
	rows   int // rows numbered so far
	sps    int
	bats   int
	hooks  int
	qrows  int // rows opened by the Querier
}

// weighted picks an index with probability proportional to its weight.
func (g *gen) weighted(w ...int) int {
	total := 0
	for _, x := range w {
		total += x
	}
	n := g.r.IntN(total)
	for i, x := range w {
		if n < x {
			return i
		}
		n -= x
	}
	return len(w) - 1
}

func (g *gen) row() int {
	g.rows++
	return g.rows
}

// op draws one operation for a block depth deep (0: no transaction).
func (g *gen) op(depth int) Op {
	g.budget--
	in := 0 // weights of operations that need a transaction
	if depth > 0 {
		in = 1
	}
	nest := 0
	if depth < g.cfg.Depth {
		nest = 1
	}
	refs := func(n int) int { return min(n, 1) }
	op := Op{}
	switch g.weighted(
		10,               // Insert
		2,                // InsertDup
		1,                // DivZero
		2*in,             // CountCursors
		5*nest,           // Tx
		3*nest,           // Begin
		1*in,             // Commit
		1*in,             // Rollback
		3*in,             // Savepoint
		2*in*refs(g.sps), // SpRollbackTo
		2*in*refs(g.sps), // SpRelease
		1*in,             // RollbackToName
		2,                // BatchOpen
		3*refs(g.bats),   // BatchNext
		1*refs(g.bats),   // BatchBreak
		1*refs(g.bats),   // BatchClose
		2,                // Atomic
		2*in,             // OnCommit
		2*in,             // OnRollback
		1*in,             // Cancel
		1*in,             // SQLCommit, SQLRollback
		2,                // RowsOpen
		2*refs(g.qrows),  // RowsRead
		1*refs(g.qrows),  // RowsClose
		1,                // ScanInsert
	) {
	case 0:
		op = Op{Kind: Insert, Row: g.row()}
	case 1:
		op = Op{Kind: InsertDup}
	case 2:
		op = Op{Kind: DivZero}
	case 3:
		op = Op{Kind: CountCursors}
	case 4, 5:
		return g.block(depth)
	case 6:
		op = Op{Kind: Commit}
	case 7:
		op = Op{Kind: Rollback}
	case 8:
		g.sps++
		op = Op{Kind: Savepoint, Ref: g.sps, Name: []string{"", "a", "b"}[g.r.IntN(3)]}
	case 9:
		op = Op{Kind: SpRollbackTo, Ref: 1 + g.r.IntN(g.sps)}
	case 10:
		op = Op{Kind: SpRelease, Ref: 1 + g.r.IntN(g.sps)}
	case 11:
		op = Op{Kind: RollbackToName, Name: []string{"a", "b"}[g.r.IntN(2)]}
	case 12:
		g.bats++
		op = Op{Kind: BatchOpen, Ref: g.bats}
	case 13, 14, 15:
		op = Op{Kind: []Kind{BatchNext, BatchBreak, BatchClose, BatchReenter}[g.r.IntN(4)], Ref: 1 + g.r.IntN(g.bats)}
	case 16:
		op = Op{Kind: Atomic, Items: g.items()}
	case 17, 18:
		g.hooks++
		op = Op{Kind: []Kind{OnCommit, OnRollback}[g.r.IntN(2)], Ref: g.hooks}
		if g.r.IntN(3) == 0 {
			op.Row = g.row() // a hook that runs a query
		}
	case 19:
		return Op{Kind: Cancel}
	case 20:
		op = Op{Kind: []Kind{SQLCommit, SQLRollback}[g.r.IntN(2)]}
	case 21:
		g.qrows++
		op = Op{Kind: RowsOpen, Ref: g.qrows}
	case 22, 23:
		op = Op{Kind: []Kind{RowsRead, RowsRead, RowsClose}[g.r.IntN(3)], Ref: 1 + g.r.IntN(g.qrows)}
	case 24:
		op = Op{Kind: ScanInsert, Row: g.row()}
	}
	switch op.Kind {
	case Insert, InsertDup, DivZero, CountCursors, SQLCommit, SQLRollback:
		op.Querier = g.r.IntN(3) == 0
	}
	op.Expired = g.r.IntN(20) == 0
	// Through the enclosing block's ctx: a goroutine or closure that kept
	// it (rules 1-3: sibling savepoint blocks, statements outside top,
	// ending a block with blocks open inside).
	op.Outer = depth > 1 && g.r.IntN(8) == 0
	return op
}

func (g *gen) block(depth int) Op {
	op := Op{Kind: Tx, Mode: Nest(g.r.IntN(3)), End: End(g.weighted(6, 2, 1))}
	if g.r.IntN(2) == 0 {
		op.Kind, op.End = Begin, End(CommitEnd+End(g.weighted(3, 1)))
	}
	n := g.r.IntN(5) + 1
	for i := 0; i < n && g.budget > 0; i++ {
		op.Body = append(op.Body, g.op(depth+1))
	}
	op.Expired = g.r.IntN(30) == 0
	op.Outer = depth > 1 && g.r.IntN(6) == 0
	return op
}

func (g *gen) items() []Item {
	items := make([]Item, 1+g.r.IntN(3))
	for i := range items {
		items[i] = Item{Kind: Insert, Runner: g.r.IntN(4) == 0}
		switch g.weighted(16, 2, 2, 1) {
		case 0:
			items[i].Row = g.row()
		case 1:
			items[i].Kind = InsertDup
		case 2:
			items[i].Kind = DivZero
		case 3:
			items[i].Kind = []Kind{SQLCommit, SQLRollback}[g.r.IntN(2)]
		}
	}
	return items
}
