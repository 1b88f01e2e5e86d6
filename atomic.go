package piccolo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Atomic queues queries and runs them all in one transaction: all or
// nothing. Consecutive plain statements go to the server in one pipelined
// round trip (with the transaction's BEGIN); a Runner such as GetOrCreate
// runs its own logic in between. An Atomic is safe for concurrent use.
type Atomic struct {
	engine  *PostgresEngine
	mu      sync.Mutex
	queries []Query
}

// Atomic returns an empty Atomic that runs on e.
func (e *PostgresEngine) Atomic() *Atomic {
	return &Atomic{engine: e}
}

// Add queues queries to run in order and returns a for chaining.
func (a *Atomic) Add(q ...Query) *Atomic {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.queries = append(a.queries, q...)
	return a
}

// atomicStep is a run of plain statements or one Runner.
type atomicStep struct {
	runner     Runner
	runnerIdx  int
	statements []Querystring
	queryIdx   []int // for each statement, the index of the query it came from
}

// Run runs the queued queries in one transaction and clears the queue,
// whatever the outcome. Inside a transaction of the engine it joins it (a
// failure then marks that transaction rollback-only). A failure is an
// *AtomicError naming the failing query's position; nothing of the Atomic
// is committed.
func (a *Atomic) Run(ctx context.Context) error {
	a.mu.Lock()
	queries := a.queries
	a.queries = nil
	a.mu.Unlock()
	steps, err := planAtomic(queries)
	if err != nil || len(steps) == 0 {
		return err
	}
	return a.engine.Transaction(ctx, func(ctx context.Context) error {
		tx := a.engine.txFrom(ctx)
		for _, s := range steps {
			if s.runner != nil {
				if err := s.runner.Run(ctx, a.engine); err != nil {
					return &AtomicError{Index: s.runnerIdx, Err: err}
				}
				continue
			}
			if failed, err := tx.pipeline(ctx, s.statements); err != nil {
				return &AtomicError{Index: s.queryIdx[failed], Err: err}
			}
		}
		return nil
	})
}

// planAtomic renders every query before any I/O and groups plain
// statements that can share a pipeline.
func planAtomic(queries []Query) ([]atomicStep, error) {
	var steps []atomicStep
	for i, q := range queries {
		if q == nil {
			return nil, &AtomicError{Index: i, Err: errors.New("nil query")}
		}
		if r, ok := q.(Runner); ok {
			steps = append(steps, atomicStep{runner: r, runnerIdx: i})
			continue
		}
		qs, err := q.Querystrings()
		if err != nil {
			return nil, &AtomicError{Index: i, Err: fmt.Errorf("render: %w", err)}
		}
		if len(steps) == 0 || steps[len(steps)-1].runner != nil {
			steps = append(steps, atomicStep{})
		}
		last := &steps[len(steps)-1]
		for _, s := range qs {
			last.statements = append(last.statements, s)
			last.queryIdx = append(last.queryIdx, i)
		}
	}
	return steps, nil
}

// pipeline sends the pending BEGIN / SAVEPOINT statements and stmts in one
// round trip and reads every result. On failure it returns the index in
// stmts of the statement that failed.
//
// It uses pgconn directly because pgx's cached-statement batches prepare
// every statement before executing any, which breaks a CREATE TABLE
// followed by an INSERT into it. Here each statement is parsed, bound and
// executed in order, with arguments encoded the way pgx's exec mode does.
func (t *PostgresTransaction) pipeline(ctx context.Context, stmts []Querystring) (int, error) {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := t.usableLocked(); err != nil {
		return 0, err
	}
	prefix := c.pending
	batch := &pgconn.Batch{}
	for _, sql := range prefix {
		batch.ExecParams(sql, nil, nil, nil, nil)
	}
	var eqb pgx.ExtendedQueryBuilder
	for i, q := range stmts {
		if err := eqb.Build(c.conn.TypeMap(), nil, q.Args); err != nil {
			return i, fmt.Errorf("piccolo: encode arguments of %q: %w", q.SQL, err)
		}
		batch.ExecParams(q.SQL, eqb.ParamValues, nil, eqb.ParamFormats, eqb.ResultFormats)
	}
	start := time.Now()
	results, err := c.conn.PgConn().ExecBatch(ctx, batch).ReadAll()
	c.logPipeline(ctx, prefix, stmts, results, err, time.Since(start))
	failedAt := len(results) // a result of its own, or none, for the statement that failed
	for i, r := range results {
		if r.Err != nil {
			failedAt, err = i, r.Err
			break
		}
	}
	done := failedAt - len(prefix) // statements of stmts that succeeded
	c.noteSentLocked(err == nil || done >= 0)
	if err == nil {
		return 0, nil
	}
	if done < 0 {
		return 0, fmt.Errorf("piccolo: begin: %w", err)
	}
	failed := min(done, len(stmts)-1)
	return failed, statementError(stmts[failed].SQL, err)
}

// logPipeline logs a pipeline's statements, which bypass pgx's tracer.
func (c *txConn) logPipeline(ctx context.Context, prefix []string, stmts []Querystring, results []*pgconn.Result, err error, d time.Duration) {
	e := c.engine
	if !e.logQueries && !e.logResponses {
		return
	}
	log := func(i int, sql string, args []any) {
		var tag string
		var stmtErr error
		switch {
		case i < len(results) && results[i].Err != nil:
			stmtErr = results[i].Err
		case i < len(results):
			tag = results[i].CommandTag.String()
		case i == len(results):
			stmtErr = err
		default:
			stmtErr = errors.New("not run: an earlier statement failed")
		}
		e.logStatement(ctx, e.queryID.Add(1), sql, args, d, tag, stmtErr)
	}
	for i, sql := range prefix {
		log(i, sql, nil)
	}
	for i, q := range stmts {
		log(len(prefix)+i, q.SQL, q.Args)
	}
}
