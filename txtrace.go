package piccolo

import (
	"context"
	"errors"
	"slices"
)

// TxTracer traces transaction blocks, as pgx's QueryTracer traces
// statements: TraceTxStart is called when a block opens (Transaction,
// Begin; each attempt under Retry is a block of its own) and returns the
// context the block carries, so statements run inside it, and blocks
// nested in it, are traced as its children; TraceTxEnd is called once
// with that context when the block has ended. Set it in
// PostgresConfig.TxTracer. It imports nothing: piccolootel adapts it to
// OpenTelemetry spans.
//
// The start is reported once the block exists (a root has its connection;
// nothing was sent yet: BEGIN goes with the first statement), the end
// once its outcome is known, before its OnCommit or OnRollback hooks run.
// A block rolled back because an enclosing block ended while it was open
// ends, innermost first, just before that enclosing block. A block that
// is never ended (a Begin without Commit or Rollback) is never reported
// ended. The statements that end a block (COMMIT, ROLLBACK, RELEASE,
// ROLLBACK TO) run under the block's context, so they are traced inside
// it, while the call's own context still bounds them. Both methods are
// called from the goroutine that opens or ends the block, and must be safe
// for concurrent use.
type TxTracer interface {
	TraceTxStart(ctx context.Context, data TraceTxStartData) context.Context
	TraceTxEnd(ctx context.Context, data TraceTxEndData)
}

// TxKind is what a transaction block is. Its values are those of txKind.
type TxKind uint8

const (
	// TxRoot is the outermost transaction: it owns BEGIN and COMMIT.
	TxRoot TxKind = iota
	// TxJoined is a block nested with NestJoin: it runs in its parent.
	TxJoined
	// TxSavepoint is a block nested with NestSavepoint: it owns a savepoint.
	TxSavepoint
)

// String returns "root", "joined" or "savepoint".
func (k TxKind) String() string {
	switch k {
	case TxRoot:
		return "root"
	case TxJoined:
		return "joined"
	case TxSavepoint:
		return "savepoint"
	}
	return "unknown"
}

// TxOutcome is how a transaction block ended.
type TxOutcome uint8

const (
	// TxCommitted: committed (a root), released (a savepoint block),
	// finished (a joined block: its root decides).
	TxCommitted TxOutcome = iota
	// TxRolledBack: rolled back, by Rollback, a failure, or a Commit that
	// became a rollback (ErrCommitRolledBack).
	TxRolledBack
	// TxOutcomeUnknown: nobody knows: the connection died after COMMIT was
	// sent (ErrAmbiguousCommit), or a COMMIT or ROLLBACK sent as SQL ended
	// the transaction.
	TxOutcomeUnknown
)

// String returns "committed", "rolled back" or "unknown".
func (o TxOutcome) String() string {
	switch o {
	case TxCommitted:
		return "committed"
	case TxRolledBack:
		return "rolled back"
	}
	return "unknown"
}

// TraceTxStartData describes a block that opens.
type TraceTxStartData struct {
	Kind TxKind
	// Attempt is the run of the closure under Retry, from 1; always 1 for
	// a nested block or a block from Begin.
	Attempt int
	// MaxAttempts is what Retry allows (1 without Retry).
	MaxAttempts int
}

// TraceTxEndData describes how a block ended.
type TraceTxEndData struct {
	Kind    TxKind
	Outcome TxOutcome
	// Err is the error of the call that ended the block (Commit's,
	// Rollback's), else why it rolled back: the closure's error, the
	// failure that made it rollback-only, or the end of an enclosing block.
	// It is nil for a block committed.
	Err error
}

// traceStart reports t, a block that has just opened in ctx under the
// options o, to the engine's TxTracer, and returns the context t's closure
// gets (without t in it yet).
func (t *PostgresTransaction) traceStart(ctx context.Context, o txOptions) context.Context {
	tr := t.c.engine.txTracer
	if tr == nil {
		return ctx
	}
	data := TraceTxStartData{Kind: TxKind(t.kind), Attempt: max(o.attempt, 1), MaxAttempts: 1}
	if t.kind == kindRoot {
		data.MaxAttempts = o.maxAttempts
	}
	t.traceCtx = tr.TraceTxStart(ctx, data)
	c := t.c
	c.mu.Lock()
	c.traced = append(c.traced, t)
	c.mu.Unlock()
	if !t.active() {
		// An enclosing block ended (another goroutine) before t was
		// listed: its report may have missed t.
		t.traceEnd(nil)
	}
	return t.traceCtx
}

// traceEnd reports, once each, the traced blocks of t's transaction that
// have ended, t among them when it has: innermost first, so the blocks an
// end of t rolled back end before t. err is the error t's ending returned
// (or its cause).
func (t *PostgresTransaction) traceEnd(err error) {
	tr := t.c.engine.txTracer
	if tr == nil {
		return
	}
	c := t.c
	type ended struct {
		x    *PostgresTransaction
		data TraceTxEndData
	}
	var report []ended
	c.mu.Lock()
	c.traced = slices.DeleteFunc(c.traced, func(x *PostgresTransaction) bool {
		outcome, ok := traceOutcome(txState(x.state.Load()))
		if !ok {
			return false
		}
		d := TraceTxEndData{Kind: TxKind(x.kind), Outcome: outcome, Err: firstErr(x.endedBy, x.abortErr)}
		if x == t && err != nil && !errors.Is(err, ErrTransactionDone) {
			d.Err = err
		}
		report = append(report, ended{x, d})
		return true
	})
	c.mu.Unlock()
	for _, r := range slices.Backward(report) {
		tr.TraceTxEnd(r.x.traceCtx, r.data)
	}
}

// traceOutcome maps a block's state to its outcome; false while it is open.
func traceOutcome(s txState) (TxOutcome, bool) {
	switch s {
	case txCommitted:
		return TxCommitted, true
	case txRolledBack:
		return TxRolledBack, true
	case txUnknown:
		return TxOutcomeUnknown, true
	}
	return 0, false
}

// traceContext returns ctx for the statements that end t: ctx's deadline
// and cancellation, the values of t's traced context (its span), and the
// engine's transaction keys as ctx has them. Without a TxTracer it is ctx.
func (t *PostgresTransaction) traceContext(ctx context.Context) context.Context {
	if t.traceCtx == nil {
		return ctx
	}
	return tracedContext{Context: ctx, values: t.traceCtx}
}

// tracedContext is a context whose values come from values first, except
// the engine's transaction keys.
type tracedContext struct {
	context.Context
	values context.Context
}

// Value implements context.Context.
func (c tracedContext) Value(key any) any {
	if _, ok := key.(txKey); !ok {
		if v := c.values.Value(key); v != nil {
			return v
		}
	}
	return c.Context.Value(key)
}
