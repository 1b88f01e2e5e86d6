package piccolo

import (
	"context"
	"fmt"
	"reflect"

	"github.com/jackc/pgx/v5"
)

// An Atomic in pipelines. Consecutive statements and Pipeliners (typed
// Inserts that write generated keys back) share one pipeline, unless a
// later one reads what an earlier one writes back: that one is rendered,
// encoded and sent only once those ran (gatherAtomic). A standalone Atomic
// whose statements are all described (from the engine's cache) and encode
// goes as one pipeline, BEGIN and COMMIT included (atomicInOne): one
// round trip. The order keeps failures as separate sends would have them:
// nothing is sent before every statement is described and encoded; the
// server skips everything after a failed statement, COMMIT included, so
// the transaction is aborted and then rolled back; a COMMIT the server
// refuses is ErrCommitRolledBack; a connection lost once COMMIT was sent
// is ErrAmbiguousCommit.

// atomicGroup is the statements of consecutive items that share a
// pipeline.
type atomicGroup struct {
	stmts   []Querystring
	scans   []func(pgx.Rows) error // parallel to stmts
	idx     []int                  // for each statement, its query's position
	done    []func() error
	doneIdx []int
	writes  []span // what the scans write into
	items   int    // how many items the group took
}

// span is a range of memory a Pipeliner's scans write into.
type span struct{ start, end uintptr }

// gatherAtomic groups the first items: statements and Pipeliners, up to
// the first other Runner, the first Pipeliner that must run through Run,
// or the first item that reads what the group writes. It takes no item
// when the first must run alone (through Run). A Pipeliner that fails to
// render ends the group before it, so that the statements before it run
// first, as they would without pipelining; it fails when it comes first.
func gatherAtomic(items []atomicItem) (*atomicGroup, error) {
	g := &atomicGroup{}
	for _, it := range items {
		if it.runner == nil {
			if g.reads(it.q.Args) {
				break
			}
			g.add(it.q, nil, it.idx)
			g.items++
			continue
		}
		p, ok := it.runner.(Pipeliner)
		if !ok {
			break
		}
		pl, ok, err := p.Pipeline()
		if err != nil && g.items == 0 {
			return nil, &AtomicError{Index: it.idx, Err: err}
		}
		if err != nil || !ok || g.readsAny(pl) {
			break
		}
		for i, q := range pl.Statements {
			var scan func(pgx.Rows) error
			if i < len(pl.Scans) {
				scan = pl.Scans[i]
			}
			g.add(q, scan, it.idx)
		}
		if pl.Done != nil {
			g.done = append(g.done, pl.Done)
			g.doneIdx = append(g.doneIdx, it.idx)
		}
		g.writes = append(g.writes, spans(pl.Writes)...)
		g.items++
	}
	return g, nil
}

func (g *atomicGroup) add(q Querystring, scan func(pgx.Rows) error, idx int) {
	g.stmts = append(g.stmts, q)
	g.scans = append(g.scans, scan)
	g.idx = append(g.idx, idx)
}

// readsAny reports whether pl reads or writes what the group writes.
func (g *atomicGroup) readsAny(pl Pipelined) bool {
	for _, q := range pl.Statements {
		if g.reads(q.Args) {
			return true
		}
	}
	for _, w := range spans(pl.Writes) {
		for _, x := range g.writes {
			if w.start < x.end && x.start < w.end {
				return true
			}
		}
	}
	return false
}

// reads reports whether an argument is a pointer into what the group
// writes: it is read when it is encoded, which must wait until the group
// wrote it.
func (g *atomicGroup) reads(args []any) bool {
	if len(g.writes) == 0 {
		return false
	}
	for _, a := range args {
		v := reflect.ValueOf(a)
		if v.Kind() != reflect.Pointer || v.IsNil() {
			continue
		}
		p := v.Pointer()
		for _, x := range g.writes {
			if p >= x.start && p < x.end {
				return true
			}
		}
	}
	return false
}

// spans returns the memory the pointers of ws point at.
func spans(ws []any) []span {
	out := make([]span, 0, len(ws))
	for _, w := range ws {
		v := reflect.ValueOf(w)
		if v.Kind() != reflect.Pointer || v.IsNil() {
			continue
		}
		start := v.Pointer()
		out = append(out, span{start, start + max(v.Type().Elem().Size(), 1)})
	}
	return out
}

// finish checks what the group's Pipeliners read, in order.
func (g *atomicGroup) finish() error {
	for i, done := range g.done {
		if err := done(); err != nil {
			return &AtomicError{Index: g.doneIdx[i], Err: err}
		}
	}
	return nil
}

// rideGroup sends g's statements in one pipeline with the transaction's
// pending BEGIN, SAVEPOINTs and RELEASEs, and, when commit is true (t is
// the root, and g the Atomic's last group), with COMMIT: t then ends. done
// false: nothing was sent (a statement is not ready, see ready), and g
// runs the usual way. Otherwise err is g's outcome: an *AtomicError when a
// statement (or a pending one before it) failed, or, with commit, the
// COMMIT's outcome as Commit reports it.
func (t *PostgresTransaction) rideGroup(ctx context.Context, g *atomicGroup, commit bool) (done bool, err error) {
	c := t.c
	if ctx.Err() != nil || c.lock(ctx) != nil {
		return false, nil // the usual path says why
	}
	ps := make([]*piped, 0, len(g.stmts)+2)
	for i, q := range g.stmts {
		p := c.engine.ready(c.conn, q, g.scans[i])
		if p == nil {
			c.unlock()
			return false, nil
		}
		ps = append(ps, p)
	}
	pending, withBegin, err := t.takePending(0)
	if err != nil {
		c.unlock()
		return true, &AtomicError{Index: g.idx[0], Err: err}
	}
	// Under read-your-writes the WAL position after COMMIT is read in the
	// same pipeline (readafter.go).
	var after *positionAfter
	commit = commit && t.plainCommit(withBegin)
	if commit {
		ps = append(ps, bare("COMMIT"))
		if readAfterFrom(ctx) != nil {
			after = newPositionAfter()
			ps = append(ps, after.read)
		}
	}
	lead := make([]*piped, len(pending), len(pending)+len(ps))
	for i, s := range pending {
		lead[i] = bare(s)
	}
	hooks, err := t.sendGroup(ctx, pending, withBegin, append(lead, ps...), g, commit, after)
	if c.conn != nil { // t goes on
		c.checkEndedLocked()
	}
	c.unlock()
	t.traceEnd(err) // reports t when COMMIT ended it
	if len(hooks) > 0 {
		hookCtx := t.hookContext(ctx, t)
		for _, h := range hooks {
			h(hookCtx)
		}
	}
	return true, err
}

// sendFirst sends, with send, statements that start with the pending ones
// in one pipeline on c's connection (see sendPipeline). A session that
// ended before BEGIN ran is replaced, and they are sent again on the fresh
// one: nothing had run. The caller holds the turn.
func (c *txConn) sendFirst(ctx context.Context, withBegin bool, send func(*pgx.Conn) (ran int, sent bool, err error)) (ran int, sent bool, err error) {
	ran, sent, err = send(c.conn)
	if withBegin && ran == 0 && sessionEnded(err) {
		var replaced bool
		if replaced, err = c.engine.replaceEnded(ctx, &c.lease, err); replaced {
			c.conn = c.lease.conn
			ran, sent, err = send(c.conn)
		}
	}
	return ran, sent, err
}

// plainCommit reports whether t, the root, would end with a plain COMMIT:
// it is not rollback-only, no block is open inside it, and the server has
// it in progress (or has not begun it: withBegin). The caller holds the
// turn.
func (t *PostgresTransaction) plainCommit(withBegin bool) bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	return t.abortErr == nil && len(t.openNestedLocked()) == 0 && !c.endedBySQL &&
		(withBegin || c.conn.PgConn().TxStatus() == 'T')
}

// sendGroup sends ps: pending, g's statements and, with commit, COMMIT
// (then, with after, the read of the WAL position, which it records); it
// settles the pending statements and, with commit, t, as the answers
// say, and returns the hooks to run when t ended. The caller holds the
// turn.
func (t *PostgresTransaction) sendGroup(ctx context.Context, pending []string, withBegin bool, ps []*piped, g *atomicGroup, commit bool, after *positionAfter) ([]func(context.Context), error) {
	c := t.c
	ran, sent, err := c.sendFirst(ctx, withBegin, func(conn *pgx.Conn) (int, bool, error) {
		return c.engine.sendPipeline(ctx, conn, ps)
	})
	n := len(pending)
	last := n + len(g.stmts) // with commit, COMMIT's index
	if ran < n && (!sent || fromServer(err) || !commit) {
		// A pending statement failed, or nothing was sent: as when they
		// go alone.
		return nil, &AtomicError{Index: g.idx[0], Err: markLost(c.conn, c.delivered(pending, withBegin, err))}
	}
	_ = c.delivered(pending, withBegin, nil)
	switch {
	case ran < last && (fromServer(err) || !commit):
		// A statement failed: the server skipped the rest, COMMIT
		// included, and the transaction is aborted.
		k := ran - n
		for j := n; j < ran; j++ { // a scan that failed before it failed first
			if ps[j].scanErr != nil {
				k, err = j-n, ps[j].scanErr
				break
			}
		}
		return nil, &AtomicError{Index: g.idx[k], Err: statementError(g.stmts[k].SQL, markLost(c.conn, err))}
	case ran < last:
		// The connection failed once COMMIT was sent: the server may have
		// run it all.
		return t.settleRoot(ctx, txUnknown), fmt.Errorf("%w: %w", ErrAmbiguousCommit, markLost(c.conn, err))
	}
	var hooks []func(context.Context)
	if commit {
		if ran > last {
			err = nil // COMMIT's answer came: a failure after it changes nothing
		}
		if after != nil {
			after.record(readAfterFrom(ctx), ps[last].tag, ran == len(ps))
		}
		var outcome txState
		outcome, err = commitOutcome(ps[last].tag, err)
		if hooks = t.settleRoot(ctx, outcome); err != nil {
			return hooks, err
		}
	}
	for j := n; j < last; j++ {
		if ps[j].scanErr != nil {
			if !commit {
				return nil, &AtomicError{Index: g.idx[j-n], Err: statementError(g.stmts[j-n].SQL, ps[j].scanErr)}
			}
			return hooks, fmt.Errorf("piccolo: the Atomic committed, but reading the rows of query %d failed: %w", g.idx[j-n], ps[j].scanErr)
		}
	}
	err = g.finish()
	if commit && err != nil {
		return hooks, fmt.Errorf("piccolo: the Atomic committed, but: %w", err)
	}
	return hooks, err
}
