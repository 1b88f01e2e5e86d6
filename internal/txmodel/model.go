package txmodel

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Run runs p on the model and returns what the engine must report.
func Run(p Program) Outcome {
	m := &model{committed: map[int]bool{0: true}, hookRows: map[int]int{},
		sps: map[int]*spRef{}, batches: map[int]*batch{}, rowsets: map[int]*rowset{}, killed: map[string]bool{}}
	m.ops(p, &frame{ctx: &ctxNode{}}, "")
	for _, b := range m.batches { // the program's deferred Close
		m.closeBatch(b, &ctxNode{})
	}
	return Outcome{Results: m.results, Committed: slices.Sorted(maps.Keys(m.committed))}
}

type model struct {
	committed map[int]bool
	hooks     []string    // the hooks that ran, in order
	hookRows  map[int]int // the row a hook inserts, by hook number
	sps       map[int]*spRef
	batches   map[int]*batch
	rowsets   map[int]*rowset
	results   []Result
	cursors   int             // numbers cursors
	generated int             // numbers generated savepoint names
	killed    map[string]bool // the Kill operations that ran, by path
}

// spRef is a *Savepoint: its transaction and name.
type spRef struct {
	h    *handle
	name string
}

// frame is a block being run: the ctx its operations use, and the
// enclosing block's.
type frame struct {
	ctx   *ctxNode
	outer *frame
}

func (m *model) ops(ops []Op, f *frame, path string) {
	for i, op := range ops {
		m.op(op, f, path+strconv.Itoa(i+1))
	}
}

// opCtx is the ctx an operation runs with.
func opCtx(op Op, f *frame) *ctxNode {
	c := f.ctx
	if op.Outer && f.outer != nil {
		c = f.outer.ctx
	}
	if op.Expired {
		c = &ctxNode{parent: c, h: c.h, expired: true}
	}
	return c
}

func (m *model) op(op Op, f *frame, path string) {
	c := opCtx(op, f)
	r := Result{Path: path, Op: op.Kind, Err: OK, Atomic: -1}
	h := c.h
	if h == nil && needsTx(op.Kind) {
		r.Skipped = true
		m.record(r, nil, c)
		return
	}
	switch op.Kind {
	case Insert, InsertDup, DivZero, CountCursors, SQLCommit, SQLRollback:
		r.Err, r.Value = m.statement(op.Kind, op.Row, c)
	case Tx, Begin:
		m.block(op, c, f, path)
		return
	case Commit, Rollback:
		r.Err = m.finish(h, op.Kind == Commit, c)
	case Savepoint:
		r.Err = m.savepoint(op, c)
	case SpRollbackTo, SpRelease:
		s := m.sps[op.Ref]
		if s == nil {
			r.Skipped = true
			break
		}
		r.Err = m.send(s.h, c, false, func(cn *conn) Class {
			if op.Kind == SpRelease {
				return cn.release(s.name)
			}
			return cn.rollbackTo(s.name)
		})
	case RollbackToName:
		r.Err = m.send(h, c, false, func(cn *conn) Class { return cn.rollbackTo(op.Name) })
	case BatchOpen:
		r.Err = m.openBatch(op.Ref, c)
	case BatchNext, BatchBreak, BatchClose, BatchReenter:
		b := m.batches[op.Ref]
		if b == nil {
			r.Skipped = true
			break
		}
		if op.Kind == BatchClose {
			r.Err = m.closeBatch(b, c)
			break
		}
		r.Err, r.Value = m.next(b, c)
		switch {
		case op.Kind == BatchBreak:
			m.closeBatch(b, c)
		case op.Kind == BatchReenter && r.Err == OK && r.Value != "[]":
			// Rule 2: the callback runs while its Next holds the batch:
			// the batch's own calls are busy, and change nothing.
			r.Value += " " + Busy.String() + " " + Busy.String()
		}
	case Atomic:
		r.Err, r.Atomic = m.atomic(op.Items, c)
		h = nil
	case OnCommit, OnRollback:
		if op.Row != 0 {
			m.hookRows[op.Ref] = op.Row
		}
		m.addHook(h, op.Ref, op.Kind == OnCommit)
	case Cancel:
		f.ctx.canceled = true
	case RowsOpen:
		r.Err, r.Value = m.openRows(op.Ref, rowsCtx(op, f))
	case ScanInsert:
		r.Err, r.Value = m.scanInsert(op.Row, c)
	case RowsRead, RowsClose:
		rs := m.rowsets[op.Ref]
		if rs == nil {
			r.Skipped = true
			break
		}
		if op.Kind == RowsRead {
			r.Value = m.readRows(rs)
		} else {
			closeRows(rs)
		}
	case Kill:
		m.kill(h, path)
	}
	m.record(r, h, c)
}

// rowsCtx is the ctx RowsOpen runs with: its ctx without cancellation
// (context.WithoutCancel), with a deadline passed when the operation says
// so. pgx reads rows under the ctx of the Query, and a cancel while rows
// are open races with the rows buffered already; programs do not test pgx.
func rowsCtx(op Op, f *frame) *ctxNode {
	c := opCtx(Op{Outer: op.Outer}, f)
	return &ctxNode{h: c.h, expired: op.Expired}
}

// record completes r with what the program sees after the call.
func (m *model) record(r Result, h *handle, c *ctxNode) {
	if h != nil {
		r.Committed, r.RolledBack = h.state == committed, h.state == rolledBack
	}
	r.Exists = c.h.usable()
	r.Hooks = strings.Join(m.hooks, " ")
	m.results = append(m.results, r)
}

// send runs do on h's connection as the engine runs a statement through h
// (rule 2): h and every enclosing block open, the transaction not
// rollback-only, else ErrTransactionDone; h top or inside
// it, else ErrConnBusy (a Batch's FETCH and CLOSE, cursor, are exempt);
// no Querier rows open on the connection, else ErrConnBusy (rule 13). A
// ctx that has ended sends nothing. Refused, nothing changes; else the
// pending SAVEPOINTs go first.
func (m *model) send(h *handle, c *ctxNode, cursor bool, do func(*conn) Class) Class {
	busy := !cursor && h.outsideTop()
	held := h.c.held != nil // rule 13
	if e := c.err(); e != 0 {
		switch { // the engine may look at either first
		case held:
			e |= Busy
		case !h.usable():
			e |= TxDone
		case busy:
			e |= Busy
		}
		return e
	}
	switch {
	case held:
		return Busy
	case !h.usable():
		return TxDone
	case busy:
		return Busy
	case h.c.dead:
		return AnyErr // rule 14: 57P01, or the connection is closed
	}
	if e := h.c.flush(); e != 0 {
		return e
	}
	return do(h.c)
}

// statement runs an INSERT, a failing SELECT, the cursor count, or a
// COMMIT or ROLLBACK sent as SQL, through ctx c.
func (m *model) statement(k Kind, row int, c *ctxNode) (Class, string) {
	control := k == SQLCommit || k == SQLRollback
	if e := c.err(); e != 0 && (c.h == nil || control) {
		return e, "" // checked before anything else
	}
	if c.h == nil { // autocommit: COMMIT and ROLLBACK only warn
		cn := newConn()
		e, value := cn.run(k, row)
		for row := range cn.rows {
			m.committed[row] = true
		}
		return e, value
	}
	if control {
		// Refused before any I/O, whatever state the transaction is in:
		// no COMMIT or ROLLBACK sent as SQL ends a transaction, and rule
		// 10 cannot happen.
		return TxControl, ""
	}
	var value string
	e := m.send(c.h, c, false, func(cn *conn) (e Class) {
		e, value = cn.run(k, row)
		return e
	})
	return e, value
}

// scanInsert is QueryFunc of one row whose scan callback inserts row with
// the same ctx. Outside a transaction the insert takes a pooled connection
// of its own and commits; inside one it is ErrConnBusy (rule 2: the
// callback runs while its statement holds the connection), sending
// nothing. The value says what the insert returned: "nil" or its classes.
func (m *model) scanInsert(row int, c *ctxNode) (Class, string) {
	if c.h == nil {
		if e := c.err(); e != 0 {
			return e, ""
		}
		inner, _ := m.statement(Insert, row, c)
		return OK, inner.String()
	}
	e := m.send(c.h, c, false, func(cn *conn) Class {
		if cn.aborted {
			return InFailedTx
		}
		return OK
	})
	if e != OK {
		return e, ""
	}
	return OK, Busy.String()
}

// savepoint is cur.Savepoint: queued, sent before the next statement.
func (m *model) savepoint(op Op, c *ctxNode) Class {
	h := c.h
	switch {
	case c.err() != 0:
		return c.err()
	case !h.usable():
		return TxDone
	case h.outsideTop():
		return Busy
	}
	name := op.Name
	if name == "" {
		m.generated++
		name = fmt.Sprintf("generated %d", m.generated)
	}
	h.c.pending = append(h.c.pending, name)
	m.sps[op.Ref] = &spRef{h: h, name: name}
	return OK
}

// needsTx reports whether op works on CurrentTransaction(ctx).
func needsTx(k Kind) bool {
	switch k {
	case Commit, Rollback, Savepoint, RollbackToName, OnCommit, OnRollback, Kill:
		return true
	}
	return false
}
