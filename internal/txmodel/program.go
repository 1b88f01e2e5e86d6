// Package txmodel is the executable statement of piccolo's transaction
// semantics: a small model of what PostgreSQL and the engine's documented
// API promise, run on programs of engine operations. The root package's
// TestModel runs the same programs against real PostgreSQL and compares
// every call's outcome with the model's.
//
// The model knows no database and no pgx. A program works on one table of
// uniquely numbered rows; row 0 is always committed, so inserting it again
// is a unique violation.
//
// The rules it states are the engine's rules for ending blocks, listed at
// the top of txend.go; comments name them by number ("rule 3"): opening
// blocks (rule 1) and Transaction (rule 8) in blocks.go, statements (rule
// 2) in model.go, ending (rules 3 to 11) in end.go, Batch and Atomic in
// batch.go; state.go is the server side, with the SAVEPOINTs an aborted
// transaction refuses (rule 12); rows.go the Querier's open rows (rule 13);
// failover.go the connection lost under a Retry transaction (rule 14).
package txmodel

import (
	"fmt"
	"strings"
)

// Kind is what an operation does.
type Kind uint8

// The operations. "cur" is CurrentTransaction(ctx) of the operation's ctx.
const (
	Insert         Kind = iota // Exec INSERT of row Row
	InsertDup                  // INSERT of row 0: 23505 unique_violation
	DivZero                    // SELECT 1/0: 22012 division_by_zero
	CountCursors               // SELECT count(*) FROM pg_cursors (the program's cursors)
	Tx                         // Transaction(ctx, fn, Nesting(Mode)): fn runs Body, then End
	Begin                      // Begin(ctx, Nesting(Mode)); Body with its ctx; then End (Commit or Rollback)
	Commit                     // cur.Commit(ctx)
	Rollback                   // cur.Rollback(ctx)
	Savepoint                  // sp[Ref] = cur.Savepoint(ctx, Name)
	SpRollbackTo               // sp[Ref].RollbackTo(ctx)
	SpRelease                  // sp[Ref].Release(ctx)
	RollbackToName             // cur.RollbackTo(ctx, Name)
	BatchOpen                  // b[Ref] = Batch(ctx, the program's rows in order, BatchSize(BatchSize))
	BatchNext                  // b[Ref].Next(ctx)
	BatchBreak                 // for range b[Ref].All(ctx) { break }
	BatchClose                 // b[Ref].Close(ctx)
	BatchReenter               // b[Ref].NextFunc(ctx, scan), scan calling b[Ref].Next(ctx) and b[Ref].Close(ctx) on the first row: the value adds their classes
	Atomic                     // Atomic().Add(Items...).Run(ctx)
	OnCommit                   // cur.OnCommit(hook Ref); the hook inserts row Row with its ctx unless Row is 0
	OnRollback                 // cur.OnRollback(hook Ref), as OnCommit
	Cancel                     // cancel the ctx the innermost block was started with
	SQLCommit                  // Exec "COMMIT": refused inside a transaction, which it would end behind the engine's back
	SQLRollback                // Exec "ROLLBACK", as SQLCommit
	RowsOpen                   // rows[Ref] = Querier().Query(ctx, the program's rows); rows[Ref].Next() (rule 13)
	RowsRead                   // read rows[Ref] to its end (Next until false), which closes it
	RowsClose                  // rows[Ref].Close()
	ScanInsert                 // QueryFunc(ctx, "SELECT 1", a callback that inserts row Row with ctx); Value: what the insert returned (rule 2)
	// Kill terminates the backend of cur's connection from another
	// connection (pg_terminate_backend, waiting for it to end), the first
	// time the operation runs (a Retry re-run runs it as a no-op): the
	// server rolls back what the transaction did (rule 14).
	Kill
)

// End is how a block ends.
type End uint8

// How blocks end: a Tx's closure returns nil, returns an error or panics; a
// Begin's handle is committed or rolled back with the block's ctx.
const (
	ReturnNil End = iota
	ReturnErr
	Panic
	CommitEnd
	RollbackEnd
)

// Nest is a nesting mode, as piccolo.NestMode.
type Nest uint8

// The nesting modes.
const (
	NestJoin Nest = iota
	NestRefuse
	NestSavepoint
)

// BatchSize is the rows per Next of every batch a program opens.
const BatchSize = 3

// Op is one operation of a program.
type Op struct {
	Kind    Kind
	Mode    Nest   // Tx, Begin
	Body    []Op   // Tx, Begin
	End     End    // Tx, Begin
	Row     int    // Insert, OnCommit, OnRollback: the row's number, unique in the program
	Ref     int    // the savepoint, batch or hook the operation names
	Name    string // Savepoint ("" generates one), RollbackToName
	Items   []Item // Atomic
	Expired bool   // run with a ctx whose deadline has passed
	// Outer runs the operation with the ctx of the block enclosing the
	// innermost one (a goroutine still holding the outer ctx).
	Outer bool
	// Querier runs a statement (Insert, InsertDup, DivZero, CountCursors,
	// SQLCommit, SQLRollback) through Querier().Exec (QueryRow for the
	// cursor count) instead of the engine's Exec: the outcome is the same,
	// as the Querier routes every call like the engine.
	Querier bool
	// Retry: a Tx given Retry(2) and FailoverBudget(0) (rule 14).
	Retry bool
}

// Item is one query queued in an Atomic.
type Item struct {
	Kind   Kind // Insert, InsertDup, DivZero, SQLCommit or SQLRollback
	Row    int
	Runner bool // queued as a Runner that runs the statement itself
}

// Program is a sequence of operations run from a ctx without a transaction.
type Program []Op

// String writes the program as Go-like lines, one operation a line.
func (p Program) String() string {
	var b strings.Builder
	writeOps(&b, p, 0)
	return b.String()
}

func writeOps(b *strings.Builder, ops []Op, depth int) {
	for _, op := range ops {
		writeOp(b, op, depth)
	}
}

// ctxName is the ctx variable of blocks nested depth deep.
func ctxName(depth int) string {
	if depth == 0 {
		return "ctx"
	}
	return fmt.Sprintf("ctx%d", depth)
}

func writeOp(b *strings.Builder, op Op, depth int) {
	indent := strings.Repeat("\t", depth)
	ctx := ctxName(depth)
	if op.Outer && depth > 0 {
		ctx = ctxName(depth - 1)
	}
	if op.Expired {
		ctx = "expired(" + ctx + ")"
	}
	inner := ctxName(depth + 1)
	line := func(format string, args ...any) {
		fmt.Fprintf(b, "%s"+format+"\n", append([]any{indent}, args...)...)
	}
	if op.Querier {
		ctx = "querier, " + ctx
	}
	switch op.Kind {
	case Insert:
		line("insert(%s, %d)", ctx, op.Row)
	case InsertDup:
		line("insert(%s, 0) // unique violation", ctx)
	case DivZero:
		line("exec(%s, \"SELECT 1/0\")", ctx)
	case CountCursors:
		line("countCursors(%s)", ctx)
	case Tx:
		line("e.Transaction(%s, func(%s context.Context) error { // %s", ctx, inner, op.Mode)
		writeOps(b, op.Body, depth+1)
		line("\t%s", op.End)
		if op.Retry {
			line("}, Retry(2), FailoverBudget(0))")
		} else {
			line("})")
		}
	case Begin:
		line("%s, tx%d, _ := e.Begin(%s, Nesting(%s))", inner, depth+1, ctx, op.Mode)
		writeOps(b, op.Body, depth+1)
		line("tx%d.%s(%s)", depth+1, op.End, inner)
	case Commit, Rollback:
		line("cur(%s).%s(%s)", ctx, map[Kind]string{Commit: "Commit", Rollback: "Rollback"}[op.Kind], ctx)
	case Savepoint:
		line("sp%d, _ := cur(%s).Savepoint(%s, %q)", op.Ref, ctx, ctx, op.Name)
	case SpRollbackTo:
		line("sp%d.RollbackTo(%s)", op.Ref, ctx)
	case SpRelease:
		line("sp%d.Release(%s)", op.Ref, ctx)
	case RollbackToName:
		line("cur(%s).RollbackTo(%s, %q)", ctx, ctx, op.Name)
	case BatchOpen:
		line("b%d, _ := e.Batch(%s, rows, BatchSize(%d))", op.Ref, ctx, BatchSize)
	case BatchNext:
		line("b%d.Next(%s)", op.Ref, ctx)
	case BatchBreak:
		line("for range b%d.All(%s) { break }", op.Ref, ctx)
	case BatchClose:
		line("b%d.Close(%s)", op.Ref, ctx)
	case BatchReenter:
		line("b%d.NextFunc(%s, func(pgx.Rows) error { b%d.Next(%s); b%d.Close(%s) })", op.Ref, ctx, op.Ref, ctx, op.Ref, ctx)
	case Atomic:
		items := make([]string, len(op.Items))
		for i, it := range op.Items {
			items[i] = it.String()
		}
		line("e.Atomic().Add(%s).Run(%s)", strings.Join(items, ", "), ctx)
	case OnCommit, OnRollback:
		hook := fmt.Sprintf("hook%d", op.Ref)
		if op.Row != 0 {
			hook = fmt.Sprintf("insertingHook%d(%d)", op.Ref, op.Row)
		}
		line("cur(%s).%s(%s)", ctx, map[Kind]string{OnCommit: "OnCommit", OnRollback: "OnRollback"}[op.Kind], hook)
	case SQLCommit:
		line("exec(%s, \"COMMIT\")", ctx)
	case SQLRollback:
		line("exec(%s, \"ROLLBACK\")", ctx)
	case Cancel:
		line("cancel%d()", depth)
	case RowsOpen:
		line("rows%d, _ := q.Query(%s, rows); rows%d.Next()", op.Ref, ctx, op.Ref)
	case RowsRead:
		line("for rows%d.Next() {}", op.Ref)
	case RowsClose:
		line("rows%d.Close()", op.Ref)
	case ScanInsert:
		line("queryFunc(%s, \"SELECT 1\", func() { insert(%s, %d) })", ctx, ctx, op.Row)
	case Kill:
		line("kill(%s) // pg_terminate_backend of its connection, on the first run only", ctx)
	}
}

// String names the item's query.
func (it Item) String() string {
	var s string
	switch it.Kind {
	case Insert:
		s = fmt.Sprintf("insertQ(%d)", it.Row)
	case InsertDup:
		s = "insertQ(0)"
	case SQLCommit:
		s = `Raw("COMMIT")`
	case SQLRollback:
		s = `Raw("ROLLBACK")`
	default:
		s = `Raw("SELECT 1/0")`
	}
	if it.Runner {
		s = "runner(" + s + ")"
	}
	return s
}

func (m Nest) String() string {
	return [...]string{"NestJoin", "NestRefuse", "NestSavepoint"}[m]
}

func (e End) String() string {
	return [...]string{"return nil", "return errBoom", "panic(boom)", "Commit", "Rollback"}[e]
}
