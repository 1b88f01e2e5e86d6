package txmodel

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Deviations are differences from the semantics that a caller of Run
// accepts for now, each named for what the engine does instead. The zero
// value is the semantics.
type Deviations struct {
	// Defect 10: TransactionExists is true for a rollback-only transaction.
	ExistsIgnoresRollbackOnly bool
	// Defect 1: a savepoint block ending while SAVEPOINTs made inside it
	// are pending in an aborted transaction stops at their failure: no
	// ROLLBACK TO, the error is 25P02 and the transaction stays aborted.
	SavepointEndStopsAtFailedFlush bool
	// EmptyBlockCommitsOnEndedCtx: a root or savepoint block that sent
	// nothing commits (nil, Committed, OnCommit hooks kept) although its
	// ctx ended before it did.
	EmptyBlockCommitsOnEndedCtx bool
	// Defect 1: a savepoint block ending on an ended ctx, with pending
	// SAVEPOINTs or to commit, reports rolled back but sends nothing: its
	// work stays in the enclosing transaction.
	SavepointEndOnEndedCtxKeepsWork bool
	// Defect 2: a call that fails on an ended ctx after BEGIN was sent
	// drops the pending SAVEPOINTs, which then never exist.
	EndedCtxDropsPendingSavepoints bool
	// Defect 7: a Batch ends with the handle it was opened through (a
	// finished block included), and an error or such an end leaves its
	// cursor open.
	BatchLeavesCursorOpen bool
}

// Run runs p on the model and returns what the engine must report.
func Run(p Program, dev Deviations) Outcome {
	m := &model{dev: dev, committed: map[int]bool{0: true}, sps: map[int]*spRef{}, batches: map[int]*batch{}}
	m.ops(p, &frame{ctx: &ctxNode{}}, "")
	for _, b := range m.batches { // the program's deferred Close
		m.closeBatch(b, &ctxNode{})
	}
	return Outcome{Results: m.results, Committed: slices.Sorted(maps.Keys(m.committed))}
}

type model struct {
	dev       Deviations
	committed map[int]bool
	hooks     []string
	sps       map[int]*spRef
	batches   map[int]*batch
	results   []Result
	cursors   int // numbers cursors
	generated int // numbers generated savepoint names
}

// spRef is a *Savepoint: its transaction and name.
type spRef struct {
	h    *handle
	name string
}

// batch is a *Batch.
type batch struct {
	own       *handle // the batch's own transaction, outside the caller's
	h         *handle // the handle it was opened through (own included)
	cursor    int
	rows      []int // rows not fetched yet
	closed    bool
	exhausted bool
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
	case Insert, InsertDup, DivZero, CountCursors:
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
		r.Err = m.send(s.h, c, viaSavepoint, func(cn *conn) Class {
			if op.Kind == SpRelease {
				return cn.release(s.name)
			}
			return cn.rollbackTo(s.name)
		})
	case RollbackToName:
		r.Err = m.send(h, c, viaStatement, func(cn *conn) Class { return cn.rollbackTo(op.Name) })
	case BatchOpen:
		r.Err = m.openBatch(op.Ref, c)
	case BatchNext, BatchBreak, BatchClose:
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
		if op.Kind == BatchBreak {
			m.closeBatch(b, c)
		}
	case Atomic:
		r.Err, r.Atomic = m.atomic(op.Items, c)
		h = nil
	case OnCommit, OnRollback:
		m.addHook(h, op.Ref, op.Kind == OnCommit)
	case Cancel:
		f.ctx.canceled = true
	}
	m.record(r, h, c)
}

// record completes r with what the program sees after the call.
func (m *model) record(r Result, h *handle, c *ctxNode) {
	if h != nil {
		r.Committed, r.RolledBack = h.state == committed, h.state == rolledBack
	}
	r.Exists = c.h.usable() || m.dev.ExistsIgnoresRollbackOnly && c.h != nil && c.h.active()
	r.Hooks = strings.Join(m.hooks, " ")
	m.results = append(m.results, r)
}

// via says what a call sent through a handle may do.
type via uint8

const (
	// viaStatement: statements, which must not land inside a savepoint
	// block they are not part of.
	viaStatement via = iota
	// viaSavepoint: a *Savepoint's RollbackTo and Release, which follow
	// PostgreSQL's rules whatever blocks are open.
	viaSavepoint
	// viaCursor: a Batch's FETCH and CLOSE, which may run through a block
	// that finished while its work lives on, and undo nothing.
	viaCursor
)

// send runs do on h's connection, as the engine runs a statement: a ctx
// that has ended sends nothing and changes nothing; a finished or
// rollback-only transaction refuses; pending SAVEPOINTs go first.
func (m *model) send(h *handle, c *ctxNode, v via, do func(*conn) Class) Class {
	usable := h.usable()
	if v == viaCursor {
		usable = !h.gone() && !h.rollbackOnly()
	}
	if e := c.err(); e != 0 {
		if !usable {
			e |= TxDone
		} else if m.dev.EndedCtxDropsPendingSavepoints && h.c.begun {
			h.c.pending = nil
		}
		return e
	}
	if !usable {
		return TxDone
	}
	if v == viaStatement && h.crossesBlock() {
		return Nested
	}
	if e := h.c.flush(); e != 0 {
		return e
	}
	return do(h.c)
}

// statement runs an INSERT, a failing SELECT or the cursor count.
func (m *model) statement(k Kind, row int, c *ctxNode) (Class, string) {
	if c.h == nil { // autocommit
		if e := c.err(); e != 0 {
			return e, ""
		}
		switch k {
		case Insert:
			m.committed[row] = true
		case InsertDup:
			return Unique, ""
		case DivZero:
			return DivByZero, ""
		case CountCursors:
			return OK, "0"
		}
		return OK, ""
	}
	if e := c.err(); e != 0 { // checked before the transaction is
		if !c.h.usable() {
			e |= TxDone
		}
		return e, ""
	}
	value := ""
	e := m.send(c.h, c, viaStatement, func(cn *conn) Class {
		if cn.aborted {
			return InFailedTx
		}
		switch k {
		case Insert:
			cn.rows[row] = len(cn.stack)
		case InsertDup:
			return cn.fail(Unique)
		case DivZero:
			return cn.fail(DivByZero)
		case CountCursors:
			value = strconv.Itoa(len(cn.cursors))
		}
		return OK
	})
	return e, value
}

func (m *model) savepoint(op Op, c *ctxNode) Class {
	h := c.h
	if e := c.err(); e != 0 {
		return e
	}
	if !h.usable() {
		return TxDone
	}
	if h.crossesBlock() {
		return Nested
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

func (m *model) addHook(h *handle, id int, onCommit bool) {
	u := h.unit()
	for u.state == committed && u.parent != nil { // a released block handed its hooks up
		u = u.parent.unit()
	}
	switch {
	case u.state == active && onCommit:
		u.onCommit = append(u.onCommit, id)
	case u.state == active:
		u.onRollback = append(u.onRollback, id)
	case u.state == committed && onCommit, u.state == rolledBack && !onCommit:
		m.runHooks([]int{id}, onCommit)
	}
}

func (m *model) runHooks(ids []int, onCommit bool) {
	prefix := "r"
	if onCommit {
		prefix = "c"
	}
	for _, id := range ids {
		m.hooks = append(m.hooks, prefix+strconv.Itoa(id))
	}
}

// needsTx reports whether op works on CurrentTransaction(ctx).
func needsTx(k Kind) bool {
	switch k {
	case Commit, Rollback, Savepoint, RollbackToName, OnCommit, OnRollback:
		return true
	}
	return false
}
