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

// atomicInOne runs items in one pipeline with t's BEGIN and COMMIT, when t
// is a root transaction that has sent nothing yet and every item is a
// statement or Pipeliner ready for a pipeline (see ready). done false:
// nothing was sent, and the items run as usual. Otherwise t has ended, or
// failed (its closure then returns err, and Transaction rolls it back).
func (t *PostgresTransaction) atomicInOne(ctx context.Context, items []atomicItem) (done bool, err error) {
	c := t.c
	if t.kind != kindRoot || ctx.Err() != nil {
		return false, nil
	}
	g, err := gatherAtomic(items)
	if err != nil || g.items < len(items) {
		return false, nil
	}
	if c.lock(ctx) != nil {
		return false, nil // the usual path says why
	}
	defer func() {
		if !done {
			c.unlock()
		}
	}()
	c.mu.Lock()
	fresh := !c.begun && len(c.pending) == 1 && c.inFlight == 0
	c.mu.Unlock()
	if !fresh {
		return false, nil
	}
	ps := make([]*piped, 0, len(g.stmts)+2)
	ps = append(ps, nil) // BEGIN, below
	for i, q := range g.stmts {
		p := c.engine.ready(c.conn, q, g.scans[i])
		if p == nil {
			return false, nil
		}
		ps = append(ps, p)
	}
	ps = append(ps, bare("COMMIT"))
	pending, withBegin, err := t.takePending(0)
	if err != nil || !withBegin || len(pending) != 1 {
		c.mu.Lock()
		c.inFlight = 0
		c.mu.Unlock()
		return false, nil
	}
	ps[0] = bare(pending[0])
	hooks, err := t.sendInOne(ctx, pending, ps, g)
	c.unlock()
	if len(hooks) > 0 {
		hookCtx := t.hookContext(ctx, t)
		for _, h := range hooks {
			h(hookCtx)
		}
	}
	return true, err
}

// sendInOne sends ps, pending BEGIN, g's statements and COMMIT, and
// settles t as the answers say. It returns the hooks to run when t ended.
// The caller holds the turn.
func (t *PostgresTransaction) sendInOne(ctx context.Context, pending []string, ps []*piped, g *atomicGroup) ([]func(context.Context), error) {
	c := t.c
	e := c.engine
	ran, sent, err := e.sendPipeline(ctx, c.conn, ps)
	if ran == 0 && sessionEnded(err) {
		// A session that ended before BEGIN is replaced: nothing ran.
		var replaced bool
		if replaced, err = e.replaceEnded(ctx, &c.lease, err); replaced {
			c.conn = c.lease.conn
			ran, sent, err = e.sendPipeline(ctx, c.conn, ps)
		}
	}
	if ran == 0 && (!sent || fromServer(err)) {
		// BEGIN failed, or nothing was sent: as when BEGIN goes alone.
		return nil, &AtomicError{Index: g.idx[0], Err: markLost(c.conn, c.delivered(pending, true, err))}
	}
	_ = c.delivered(pending, true, nil)
	last := len(ps) - 1
	switch {
	case ran > 0 && ran < last && fromServer(err):
		// A statement failed: the server skipped the rest, COMMIT included,
		// and the transaction is aborted. Transaction rolls it back.
		k := ran - 1
		for j := 1; j < ran; j++ { // a scan that failed before it failed first
			if ps[j].scanErr != nil {
				k, err = j-1, ps[j].scanErr
				break
			}
		}
		return nil, &AtomicError{Index: g.idx[k], Err: statementError(g.stmts[k].SQL, err)}
	case ran < last:
		// The connection failed once COMMIT was sent: the server may have
		// run it all.
		return t.settleRoot(ctx, txUnknown), fmt.Errorf("%w: %w", ErrAmbiguousCommit, markLost(c.conn, err))
	}
	if ran > last {
		err = nil // COMMIT's answer came: a failure after it changes nothing
	}
	outcome, err := commitOutcome(ps[last].tag, err)
	hooks := t.settleRoot(ctx, outcome)
	if err != nil {
		return hooks, err
	}
	for j := 1; j < last; j++ {
		if ps[j].scanErr != nil {
			return hooks, fmt.Errorf("piccolo: the Atomic committed, but reading the rows of query %d failed: %w", g.idx[j-1], ps[j].scanErr)
		}
	}
	if err := g.finish(); err != nil {
		return hooks, fmt.Errorf("piccolo: the Atomic committed, but: %w", err)
	}
	return hooks, nil
}
