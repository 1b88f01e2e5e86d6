package piccolo

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo/internal/sqltext"
)

// Atomic queues queries and runs them all in one transaction: all or
// nothing. Consecutive data statements go to the server in one pipelined
// round trip; DDL and anything else that may change the schema (SELECT
// INTO, CREATE TABLE AS) runs on its own so that statements after it can
// use what it created; a Runner such as GetOrCreate runs its own logic in
// between. Atomic owns its transaction: a queued query whose SQL controls
// it (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE... anywhere in a script)
// is refused. An Atomic is safe for concurrent use.
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

// atomicItem is a queued query's part in the plan: one statement it
// rendered to, or the query itself when it is a Runner.
type atomicItem struct {
	q      Querystring
	runner Runner
	idx    int // the query's position in the Atomic
}

// Run runs the queued queries in one transaction and clears the queue,
// whatever the outcome. Inside a transaction of the engine it joins it (a
// failure then marks that transaction rollback-only). A query that fails
// (or cannot render) comes back as an *AtomicError naming its position,
// and nothing of the Atomic is committed. Failures to begin or commit come
// back as Transaction returns them: ErrCommitRolledBack (nothing
// committed, e.g. a deferred constraint), or ErrAmbiguousCommit (the
// outcome is unknown). Every query is rendered and checked before any
// I/O: a script that controls the transaction fails there, with an
// *AtomicError wrapping ErrTransactionControl.
//
// Outside a transaction, an Atomic of data statements and Pipeliners that
// are all described already (they ran before) goes to the server as one
// pipeline, BEGIN and COMMIT included: one round trip (see atomicone.go).
// A Pipeliner's rows are then read after the COMMIT was sent: should
// reading them fail (a column whose type no longer fits its field), the
// Atomic has committed, and the error (not an *AtomicError) says so.
func (a *Atomic) Run(ctx context.Context) error {
	a.mu.Lock()
	queries := a.queries
	a.queries = nil
	a.mu.Unlock()
	items, err := planAtomic(queries)
	if err != nil || len(items) == 0 {
		return err
	}
	// Atomic takes no options: route sends it to the primary.
	return a.engine.route(ctx, runOptions{}, func(on *PostgresEngine) (bool, error) {
		return false, on.Transaction(ctx, func(ctx context.Context) error {
			return on.runAtomic(ctx, items)
		})
	})
}

// runAtomic runs the planned items in ctx's transaction of e: a Runner
// alone, and runs of statements and Pipeliners in pipelines (see
// gatherAtomic).
func (e *PostgresEngine) runAtomic(ctx context.Context, items []atomicItem) error {
	tx := e.txFrom(ctx)
	for i := 0; i < len(items); {
		g, err := gatherAtomic(items[i:])
		if err != nil {
			return err
		}
		if g.items == 0 { // a Runner that runs alone
			if err := items[i].runner.Run(ctx, e); err != nil {
				return &AtomicError{Index: items[i].idx, Err: err}
			}
			i++
			continue
		}
		i += g.items
		// The root is the Atomic's own transaction: COMMIT may ride with
		// the last group.
		if done, err := tx.rideGroup(ctx, g, i == len(items) && tx.kind == kindRoot); done {
			if err != nil {
				return err
			}
			continue
		}
		if failed, err := tx.pipelineScans(ctx, g.stmts, g.scans); err != nil {
			return &AtomicError{Index: g.idx[failed], Err: err}
		}
		if err := g.finish(); err != nil {
			return err
		}
	}
	return nil
}

// planAtomic renders every query that is not a Runner before any I/O and
// checks its statements.
func planAtomic(queries []Query) ([]atomicItem, error) {
	var items []atomicItem
	for i, q := range queries {
		if q == nil {
			return nil, &AtomicError{Index: i, Err: errors.New("nil query")}
		}
		if r, ok := q.(Runner); ok {
			items = append(items, atomicItem{runner: r, idx: i})
			continue
		}
		qs, err := q.Querystrings()
		if err != nil {
			return nil, &AtomicError{Index: i, Err: fmt.Errorf("render: %w", err)}
		}
		for _, s := range qs {
			if err := checkSize(s); err != nil {
				return nil, &AtomicError{Index: i, Err: err}
			}
			// A run of the same SQL (many inserts) is checked once.
			if n := len(items); n == 0 || items[n-1].runner != nil || items[n-1].q.SQL != s.SQL {
				if err := refuseInAtomic(s.SQL); err != nil {
					return nil, &AtomicError{Index: i, Err: err}
				}
			}
			items = append(items, atomicItem{q: s, idx: i})
		}
	}
	return items, nil
}

// pipeline runs stmts in order on the transaction's connection and, on
// failure, returns the index in stmts of the statement that failed.
// Consecutive data statements (SELECT, INSERT, UPDATE, DELETE... without
// SELECT INTO) go in one pgx batch: one round trip once they are described.
// Any other statement (DDL, or anything sqltext.IsData cannot vouch for)
// runs alone, before the statements that may depend on it are described;
// without arguments it may hold several statements.
//
// After each step the transaction must still be open on the server: should
// SQL have ended it (planAtomic refuses transaction control, but a
// procedure could try), pipeline stops at once, before anything else can
// run in autocommit, and the transaction refuses every later statement.
func (t *PostgresTransaction) pipeline(ctx context.Context, stmts []Querystring) (failed int, err error) {
	return t.pipelineScans(ctx, stmts, nil)
}

// pipelineScans is pipeline with scans[i], when not nil, reading the rows
// of stmts[i] (scans may be shorter than stmts).
func (t *PostgresTransaction) pipelineScans(ctx context.Context, stmts []Querystring, scans []func(pgx.Rows) error) (failed int, err error) {
	err = t.withConn(ctx, func(ctx context.Context, conn *pgx.Conn) error {
		for i := 0; i < len(stmts); {
			j := i
			for j < len(stmts) && (j > i && stmts[j].SQL == stmts[j-1].SQL || sqltext.IsData(stmts[j].SQL)) {
				j++
			}
			if j == i {
				j = i + 1
			}
			k, err := t.c.engine.runInOrder(ctx, conn, stmts[i:j], scansFrom(scans, i, j))
			if err != nil {
				failed = i + k
				return statementError(stmts[failed].SQL, err)
			}
			t.c.checkEndedLocked()
			if err := t.usable(); err != nil {
				failed = j - 1
				return err
			}
			i = j
		}
		return nil
	})
	return failed, err
}

// runInOrder runs stmts in order, in pgx batches, or alone when there is
// one. On failure it returns the index of the statement that failed.
//
// pgx prepares and encodes a whole batch before running any of it, and a
// failure there names no statement (an encoding failure even closes the
// connection). So each statement is first checked against its description:
// described once per engine and SQL text, its arguments encoded without
// I/O. The batch then fails only at execution, where pgx reports which
// statement failed.
//
// A statement is described (a round trip) only once the statements before
// it have run: a data statement can still create what a later one uses (a
// SELECT of a function that creates a table), and a failed describe would
// abort the transaction. So a batch ends before each statement that needs
// describing, and the describe's server error is that statement's own.
func (e *PostgresEngine) runInOrder(ctx context.Context, conn *pgx.Conn, stmts []Querystring, scans []func(pgx.Rows) error) (int, error) {
	for start := 0; start < len(stmts); {
		rest := stmts[start:]
		if len(rest) == 1 && !e.canRide(rest[0]) {
			return start, runOne(ctx, conn, rest[0], scanAt(scans, start))
		}
		n, err := e.checkStatements(ctx, conn, rest)
		if err != nil {
			return start + n, err
		}
		if k, err := e.runReady(ctx, conn, rest[:n], scansFrom(scans, start, start+n)); err != nil {
			return start + k, err
		}
		start += n
	}
	return 0, nil
}

// runOne runs q alone, scan reading its rows (nil: discarded).
func runOne(ctx context.Context, conn *pgx.Conn, q Querystring, scan func(pgx.Rows) error) error {
	if scan == nil {
		_, err := conn.Exec(ctx, q.SQL, q.Args...)
		return err
	}
	rows, err := conn.Query(ctx, q.SQL, q.Args...)
	if err == nil {
		_, _, err = readRows(rows, scan)
	}
	return err
}

// scanAt returns scans[i], or nil when scans is shorter.
func scanAt(scans []func(pgx.Rows) error, i int) func(pgx.Rows) error {
	if i < len(scans) {
		return scans[i]
	}
	return nil
}

// scansFrom returns scans[i:j], as far as scans goes.
func scansFrom(scans []func(pgx.Rows) error, i, j int) []func(pgx.Rows) error {
	return scans[min(i, len(scans)):min(j, len(scans))]
}

// runReady runs stmts, described and encodable, in one pipeline of its
// own when they can ride (see canRide), else in a pgx batch. On failure
// it returns the index of the statement that failed.
func (e *PostgresEngine) runReady(ctx context.Context, conn *pgx.Conn, stmts []Querystring, scans []func(pgx.Rows) error) (int, error) {
	ps := make([]*piped, len(stmts))
	for i, q := range stmts {
		if ps[i] = e.ready(conn, q, scanAt(scans, i)); ps[i] == nil {
			return runBatch(ctx, conn, stmts, scans)
		}
	}
	ran, _, err := e.sendPipeline(ctx, conn, ps)
	for i := range min(ran+1, len(ps)) {
		if ps[i].scanErr != nil {
			return i, ps[i].scanErr
		}
	}
	return ran, err
}

// runBatch runs stmts in one pgx batch; on failure it returns the index of
// the statement that failed.
func runBatch(ctx context.Context, conn *pgx.Conn, stmts []Querystring, scans []func(pgx.Rows) error) (int, error) {
	b := &pgx.Batch{}
	for _, q := range stmts {
		b.Queue(q.SQL, q.Args...)
	}
	br := conn.SendBatch(ctx, b)
	for i := range stmts {
		var err error
		if scan := scanAt(scans, i); scan == nil {
			_, err = br.Exec()
		} else if rows, qErr := br.Query(); qErr != nil {
			err = qErr
		} else {
			_, _, err = readRows(rows, scan)
		}
		if err != nil {
			// A failure before anything ran (the schema changed since the
			// statements were described) is reported at the first.
			if closeErr := br.Close(); closeErr != nil && !errors.Is(closeErr, err) && closeErr.Error() != err.Error() {
				err = errors.Join(err, closeErr)
			}
			return i, err
		}
	}
	return 0, br.Close()
}

// checkStatements describes statements of stmts (from the engine's cache,
// or with a round trip) and encodes their arguments, without running
// anything. It returns how many of the first statements are ready to run
// in one batch: all of them, or those before the first statement after
// the first that must be described, which has to wait until they ran. On
// failure it returns the index of the statement that failed.
func (e *PostgresEngine) checkStatements(ctx context.Context, conn *pgx.Conn, stmts []Querystring) (int, error) {
	var eqb pgx.ExtendedQueryBuilder
	for i, q := range stmts {
		sd, cached := e.described.Load(q.SQL)
		for {
			if !cached {
				if i > 0 {
					return i, nil // run the statements before it first
				}
				d, err := conn.PgConn().Prepare(ctx, "", q.SQL, nil)
				if err != nil {
					return i, err
				}
				e.rememberDescription(q.SQL, d)
				sd = d
			}
			err := eqb.Build(conn.TypeMap(), sd.(*pgconn.StatementDescription), q.Args)
			if err == nil {
				break
			}
			if cached {
				cached = false // the schema may have changed: describe again
				continue
			}
			return i, fmt.Errorf("piccolo: encode arguments: %w", err)
		}
	}
	return len(stmts), nil
}
