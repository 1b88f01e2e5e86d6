package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/internal/txmodel"
)

// programRun runs a txmodel program against the engine and records what
// every call returned, as txmodel.Run does for the model.
type programRun struct {
	e     *piccolo.PostgresEngine
	table string
	prog  int // the program's rows are (prog, id) in table
	sps   map[int]*piccolo.Savepoint
	bats  map[int]*piccolo.Batch
	q     *piccolo.Querier
	rows  map[int]pgx.Rows // the Querier's rows the program opened

	hooks  *hookLog
	res    []txmodel.Result // recorded by the one goroutine running the ops
	killed map[string]bool  // the Kill operations that ran, by path
}

// hookLog lists the hooks that ran, in order; hooks may run on any goroutine.
type hookLog struct {
	mu  sync.Mutex
	ran []string
}

func (l *hookLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ran = append(l.ran, s)
}

func (l *hookLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ran)
}

func newProgramRun(e *piccolo.PostgresEngine, table string, prog int, hooks *hookLog) *programRun {
	return &programRun{e: e, table: table, prog: prog, hooks: hooks, q: e.Querier(),
		sps: map[int]*piccolo.Savepoint{}, bats: map[int]*piccolo.Batch{}, rows: map[int]pgx.Rows{}, killed: map[string]bool{}}
}

// eframe is a block being run: its ctx, the cancel of the ctx the block
// was started with, and the enclosing block.
type eframe struct {
	ctx    context.Context
	cancel context.CancelFunc
	outer  *eframe
}

// errPanicked stands for a closure's panic that came back out of Transaction.
var errPanicked = errors.New("the closure's panic came back out")

func (r *programRun) insertQ(row int) piccolo.Querystring {
	return piccolo.Querystring{SQL: "INSERT INTO " + r.table + " (prog, id) VALUES ($1, $2)", Args: []any{r.prog, row}}
}

// query renders an operation's or Atomic item's statement.
func (r *programRun) query(k txmodel.Kind, row int) piccolo.Querystring {
	switch k {
	case txmodel.Insert:
		return r.insertQ(row)
	case txmodel.InsertDup:
		return r.insertQ(0)
	case txmodel.DivZero:
		return piccolo.Querystring{SQL: "SELECT 1/0"}
	case txmodel.SQLCommit:
		return piccolo.Querystring{SQL: "COMMIT"}
	case txmodel.SQLRollback:
		return piccolo.Querystring{SQL: "ROLLBACK"}
	}
	return piccolo.Querystring{SQL: "SELECT count(*) FROM pg_cursors WHERE name LIKE 'piccolo%'"}
}

func (r *programRun) ops(ops []txmodel.Op, f *eframe, path string) {
	for i, op := range ops {
		r.op(op, f, path+strconv.Itoa(i+1))
	}
}

func (r *programRun) op(op txmodel.Op, f *eframe, path string) {
	ctx := f.ctx
	if op.Outer && f.outer != nil {
		ctx = f.outer.ctx
	}
	if op.Expired {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.Unix(1, 0))
		defer cancel()
	}
	res := txmodel.Result{Path: path, Op: op.Kind, Atomic: -1}
	var err error
	h := r.e.CurrentTransaction(ctx)
	switch op.Kind {
	case txmodel.Insert, txmodel.InsertDup, txmodel.DivZero, txmodel.CountCursors, txmodel.SQLCommit, txmodel.SQLRollback:
		res.Value, err = r.statement(ctx, op)
	case txmodel.Tx:
		r.tx(op, ctx, f, path)
		return
	case txmodel.Begin:
		r.begin(op, ctx, f, path)
		return
	case txmodel.Commit, txmodel.Rollback, txmodel.Savepoint, txmodel.RollbackToName, txmodel.OnCommit, txmodel.OnRollback:
		if h == nil {
			res.Skipped = true
			break
		}
		err = r.onTx(ctx, h, op)
	case txmodel.SpRollbackTo, txmodel.SpRelease:
		sp := r.sps[op.Ref]
		if sp == nil {
			res.Skipped = true
			break
		}
		if op.Kind == txmodel.SpRelease {
			err = sp.Release(ctx)
		} else {
			err = sp.RollbackTo(ctx)
		}
	case txmodel.BatchOpen:
		var b *piccolo.Batch
		b, err = r.e.Batch(ctx, piccolo.Raw("SELECT id FROM "+r.table+" WHERE prog = $1 ORDER BY id", r.prog), piccolo.BatchSize(txmodel.BatchSize))
		if err == nil {
			r.bats[op.Ref] = b
		}
	case txmodel.BatchNext, txmodel.BatchBreak, txmodel.BatchClose, txmodel.BatchReenter:
		b := r.bats[op.Ref]
		if b == nil {
			res.Skipped = true
			break
		}
		res.Value, err = batchOp(ctx, b, op.Kind)
	case txmodel.Atomic:
		err = r.atomic(ctx, op.Items)
		h = nil
	case txmodel.Cancel:
		f.cancel()
	case txmodel.RowsOpen:
		res.Value, err = r.openRows(op, f)
	case txmodel.ScanInsert:
		err = r.e.QueryFunc(ctx, piccolo.Querystring{SQL: "SELECT 1"}, func(pgx.Rows) error {
			_, inner := r.e.Exec(ctx, r.insertQ(op.Row))
			res.Value = (classify(inner) &^ txmodel.AnyErr).String() // its classes, as the model names them
			return nil
		})
	case txmodel.RowsRead, txmodel.RowsClose:
		rows := r.rows[op.Ref]
		if rows == nil {
			res.Skipped = true
			break
		}
		res.Value, err = readRows(rows, op.Kind)
	case txmodel.Kill:
		if h == nil {
			res.Skipped = true
			break
		}
		err = r.kill(h, path)
	}
	r.record(res, err, h, ctx)
}

// record completes res with err and what the program sees after the call.
func (r *programRun) record(res txmodel.Result, err error, h *piccolo.PostgresTransaction, ctx context.Context) {
	if !res.Skipped {
		res.Err = classify(err)
	} else {
		res.Err = txmodel.OK
	}
	var ae *piccolo.AtomicError
	if res.Op == txmodel.Atomic && errors.As(err, &ae) {
		res.Atomic = ae.Index
	}
	if h != nil {
		res.Committed, res.RolledBack = h.Committed(), h.RolledBack()
	}
	res.Exists = r.e.TransactionExists(ctx)
	res.Hooks = strings.Join(r.hooks.list(), " ")
	r.res = append(r.res, res)
}

func (r *programRun) statement(ctx context.Context, op txmodel.Op) (string, error) {
	q := r.query(op.Kind, op.Row)
	var n int64
	var err error
	switch {
	case op.Kind != txmodel.CountCursors && op.Querier:
		_, err = r.q.Exec(ctx, q.SQL, q.Args...)
		return "", err
	case op.Kind != txmodel.CountCursors:
		_, err = r.e.Exec(ctx, q)
		return "", err
	case op.Querier:
		err = r.q.QueryRow(ctx, q.SQL).Scan(&n)
	default:
		err = r.e.QueryFunc(ctx, q, func(rows pgx.Rows) error { return rows.Scan(&n) })
	}
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(n, 10), nil
}

// openRows runs the Querier's Query of the program's rows and reads the
// first, leaving the rows open. Its ctx is never canceled (see the
// model's rowsCtx), but may have expired.
func (r *programRun) openRows(op txmodel.Op, f *eframe) (string, error) {
	ctx := f.ctx
	if op.Outer && f.outer != nil {
		ctx = f.outer.ctx
	}
	ctx = context.WithoutCancel(ctx)
	if op.Expired {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.Unix(1, 0))
		defer cancel()
	}
	rows, err := r.q.Query(ctx, "SELECT id FROM "+r.table+" WHERE prog = $1 ORDER BY id", r.prog)
	if err != nil {
		return "", err
	}
	ids, err := scanIDs(rows, 1)
	if err != nil {
		rows.Close()
		return "", err // as the model, a program has no rows that failed to open
	}
	r.rows[op.Ref] = rows
	return fmt.Sprint(ids), nil
}

// readRows reads rows to their end, or closes them.
func readRows(rows pgx.Rows, k txmodel.Kind) (string, error) {
	if k == txmodel.RowsClose {
		rows.Close()
		return "", nil
	}
	ids, err := scanIDs(rows, -1)
	if err != nil {
		return "", err
	}
	return fmt.Sprint(ids), nil
}

// scanIDs reads up to n rows' ids (all of them when n < 0), and the rows'
// error once they ended.
func scanIDs(rows pgx.Rows, n int) ([]int, error) {
	ids := []int{}
	for n != 0 && rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
		n--
	}
	if n != 0 { // ended
		return ids, rows.Err()
	}
	return ids, nil
}

// onTx runs an operation on CurrentTransaction(ctx).
func (r *programRun) onTx(ctx context.Context, h *piccolo.PostgresTransaction, op txmodel.Op) error {
	switch op.Kind {
	case txmodel.Commit:
		return h.Commit(ctx)
	case txmodel.Rollback:
		return h.Rollback(ctx)
	case txmodel.Savepoint:
		sp, err := h.Savepoint(ctx, op.Name)
		if err == nil {
			r.sps[op.Ref] = sp
		}
		return err
	case txmodel.RollbackToName:
		return h.RollbackTo(ctx, op.Name)
	case txmodel.OnCommit:
		h.OnCommit(r.hook("c", op))
	case txmodel.OnRollback:
		h.OnRollback(r.hook("r", op))
	}
	return nil
}

// hook returns the hook op registers: it records its name, after a "!"
// when the row it inserts (if any) with the ctx it got fails.
func (r *programRun) hook(prefix string, op txmodel.Op) func(context.Context) {
	return func(ctx context.Context) {
		name := prefix + strconv.Itoa(op.Ref)
		if op.Row != 0 {
			if _, err := r.e.Exec(ctx, r.insertQ(op.Row)); err != nil {
				name += "!"
			}
		}
		r.hooks.add(name)
	}
}

// kill terminates the backend of h's connection from another connection
// and waits for it to end, the first time the operation at path runs.
func (r *programRun) kill(h *piccolo.PostgresTransaction, path string) error {
	if r.killed[path] {
		return nil
	}
	r.killed[path] = true
	pid := piccolo.BackendPID(h)
	if pid == 0 {
		return nil
	}
	var ok bool
	err := r.e.QueryFunc(context.Background(), piccolo.Querystring{SQL: "SELECT pg_terminate_backend($1)", Args: []any{int32(pid)}},
		func(rows pgx.Rows) error { return rows.Scan(&ok) })
	if err == nil && !ok {
		err = fmt.Errorf("backend %d not terminated", pid)
	}
	// Wait for the session's end to reach the socket (pg_terminate_backend
	// with a timeout would poll every 100 ms).
	for deadline := time.Now().Add(5 * time.Second); err == nil && !piccolo.BackendEnded(h); {
		if time.Now().After(deadline) {
			err = fmt.Errorf("backend %d still running", pid)
		}
		time.Sleep(time.Millisecond)
	}
	return err
}

// tx runs e.Transaction with the operation's body as its closure.
func (r *programRun) tx(op txmodel.Op, ctx context.Context, f *eframe, path string) {
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var h *piccolo.PostgresTransaction
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = errPanicked
			}
		}()
		return r.e.Transaction(bctx, func(txCtx context.Context) error {
			h = r.e.CurrentTransaction(txCtx)
			r.ops(op.Body, &eframe{ctx: txCtx, cancel: cancel, outer: f}, path+".")
			switch op.End {
			case txmodel.ReturnErr:
				return fmt.Errorf("closure: %w", errBoom)
			case txmodel.Panic:
				panic("boom")
			}
			return nil
		}, txOptions(op)...)
	}()
	r.record(txmodel.Result{Path: path, Op: txmodel.Tx, Atomic: -1}, err, h, ctx)
}

// txOptions are the options of a Tx operation's Transaction.
func txOptions(op txmodel.Op) []piccolo.TxOption {
	opts := []piccolo.TxOption{piccolo.Nesting(piccolo.NestMode(op.Mode))}
	if op.Retry {
		opts = append(opts, piccolo.Retry(2), piccolo.FailoverBudget(0))
	}
	return opts
}

// begin runs e.Begin, the body with its ctx, then Commit or Rollback.
func (r *programRun) begin(op txmodel.Op, ctx context.Context, f *eframe, path string) {
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	txCtx, h, err := r.e.Begin(bctx, piccolo.Nesting(piccolo.NestMode(op.Mode)))
	r.record(txmodel.Result{Path: path, Op: txmodel.Begin, Atomic: -1}, err, h, txCtx)
	if err != nil {
		return
	}
	r.ops(op.Body, &eframe{ctx: txCtx, cancel: cancel, outer: f}, path+".")
	if op.End == txmodel.CommitEnd {
		err = h.Commit(txCtx)
	} else {
		err = h.Rollback(txCtx)
	}
	r.record(txmodel.Result{Path: path + ".end", Op: txmodel.Begin, Atomic: -1}, err, h, txCtx)
}

// stmtRunner is an Atomic Runner that runs its statement itself.
type stmtRunner struct{ q piccolo.Querystring }

func (s stmtRunner) Querystrings() ([]piccolo.Querystring, error) {
	return []piccolo.Querystring{s.q}, nil
}

func (s stmtRunner) Run(ctx context.Context, e piccolo.Engine) error {
	_, err := e.Exec(ctx, s.q)
	return err
}

func (r *programRun) atomic(ctx context.Context, items []txmodel.Item) error {
	a := r.e.Atomic()
	for _, it := range items {
		q := r.query(it.Kind, it.Row)
		if it.Runner {
			a.Add(stmtRunner{q})
		} else {
			a.Add(piccolo.Raw(q.SQL, q.Args...))
		}
	}
	return a.Run(ctx)
}

// batchOp runs Next, a loop over All left with break, Close, or NextFunc
// whose callback calls the batch's Next and Close.
func batchOp(ctx context.Context, b *piccolo.Batch, k txmodel.Kind) (string, error) {
	switch k {
	case txmodel.BatchClose:
		return "", b.Close(ctx)
	case txmodel.BatchReenter:
		var ids []int
		inner := ""
		_, err := b.NextFunc(ctx, func(rows pgx.Rows) error {
			var id int32
			if err := rows.Scan(&id); err != nil {
				return err
			}
			if len(ids) == 0 {
				_, next := b.Next(ctx)
				closeErr := b.Close(ctx)
				inner = " " + (classify(next) &^ txmodel.AnyErr).String() + " " + (classify(closeErr) &^ txmodel.AnyErr).String()
			}
			ids = append(ids, int(id))
			return nil
		})
		if err != nil {
			return "", err
		}
		if ids == nil {
			ids = []int{}
		}
		return fmt.Sprint(ids) + inner, nil
	case txmodel.BatchNext:
		rows, err := b.Next(ctx)
		if err != nil {
			return "", err
		}
		return rowIDs(rows), nil
	}
	value, yielded := "[]", false
	var err error
	for rows, e := range b.All(ctx) {
		value, err, yielded = rowIDs(rows), e, true
		break
	}
	if yielded && err != nil {
		value = ""
	}
	return value, err
}

func rowIDs(rows []map[string]any) string {
	ids := make([]int, len(rows))
	for i, row := range rows {
		id, _ := row["id"].(int32)
		ids[i] = int(id)
	}
	return fmt.Sprint(ids)
}

// classify returns every class err has.
func classify(err error) txmodel.Class {
	if err == nil {
		return txmodel.OK
	}
	c := txmodel.AnyErr
	for _, s := range []struct {
		target error
		class  txmodel.Class
	}{
		{piccolo.ErrTransactionDone, txmodel.TxDone},
		{piccolo.ErrCommitRolledBack, txmodel.CommitRolledBack},
		{piccolo.ErrNestedTransaction, txmodel.Nested},
		{piccolo.ErrBatchClosed, txmodel.BatchClosed},
		{piccolo.ErrConnBusy, txmodel.Busy},
		{piccolo.ErrTransactionControl, txmodel.TxControl},
		{context.Canceled, txmodel.Canceled},
		{context.DeadlineExceeded, txmodel.Deadline},
		{errBoom, txmodel.Boom},
		{errPanicked, txmodel.Panicked},
	} {
		if errors.Is(err, s.target) {
			c |= s.class
		}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		c |= map[string]txmodel.Class{
			pgerrcode.UniqueViolation:               txmodel.Unique,
			pgerrcode.DivisionByZero:                txmodel.DivByZero,
			pgerrcode.InFailedSQLTransaction:        txmodel.InFailedTx,
			pgerrcode.InvalidSavepointSpecification: txmodel.NoSavepoint,
			pgerrcode.InvalidCursorName:             txmodel.NoCursor,
		}[pgErr.Code]
	}
	return c
}

// committedRows reads the program's committed rows.
func (r *programRun) committedRows(ctx context.Context) ([]int, error) {
	var ids []int
	err := r.e.QueryFunc(ctx, piccolo.Querystring{SQL: "SELECT id FROM " + r.table + " WHERE prog = $1", Args: []any{r.prog}}, func(rows pgx.Rows) error {
		var id int
		err := rows.Scan(&id)
		ids = append(ids, id)
		return err
	})
	slices.Sort(ids)
	return ids, err
}
