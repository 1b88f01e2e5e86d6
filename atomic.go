package piccolo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Atomic queues queries and runs them all in one transaction: all or
// nothing. Consecutive data statements go to the server in one pipelined
// round trip; DDL runs on its own so that statements after it can use what
// it created; a Runner such as GetOrCreate runs its own logic in between.
// An Atomic is safe for concurrent use.
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
// failure then marks that transaction rollback-only). A query that fails
// (or cannot render) comes back as an *AtomicError naming its position,
// and nothing of the Atomic is committed. Failures to begin or commit come
// back as Transaction returns them: ErrCommitRolledBack (nothing
// committed, e.g. a deferred constraint), or ErrAmbiguousCommit (the
// outcome is unknown).
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
			if err := checkSize(s); err != nil {
				return nil, &AtomicError{Index: i, Err: err}
			}
			last.statements = append(last.statements, s)
			last.queryIdx = append(last.queryIdx, i)
		}
	}
	return steps, nil
}

// pipeline runs stmts in order on the transaction's connection and, on
// failure, returns the index in stmts of the statement that failed.
// Consecutive data statements (SELECT, INSERT, UPDATE, DELETE...) go in one
// pgx batch: one round trip once pgx has them prepared. Any other statement
// (DDL) runs alone, before the statements that may depend on it are
// prepared; without arguments it may hold several statements.
func (t *PostgresTransaction) pipeline(ctx context.Context, stmts []Querystring) (failed int, err error) {
	err = t.withConn(ctx, func(ctx context.Context, conn *pgx.Conn) error {
		for i := 0; i < len(stmts); {
			j := i
			for j < len(stmts) && isDataStatement(stmts[j].SQL) {
				j++
			}
			if j == i {
				j = i + 1
			}
			k, err := t.c.engine.runInOrder(ctx, conn, stmts[i:j])
			if err != nil {
				failed = i + k
				return statementError(stmts[failed].SQL, err)
			}
			i = j
		}
		return nil
	})
	return failed, err
}

// runInOrder runs stmts in one pgx batch, or alone when there is one. On
// failure it returns the index of the statement that failed.
//
// pgx prepares and encodes a whole batch before running any of it, and a
// failure there names no statement (an encoding failure even closes the
// connection). So each statement is first checked against its description:
// described once per engine and SQL text (a round trip the first time), its
// arguments encoded without I/O. The batch then fails only at execution,
// where pgx reports which statement failed.
func (e *PostgresEngine) runInOrder(ctx context.Context, conn *pgx.Conn, stmts []Querystring) (int, error) {
	if len(stmts) == 1 {
		_, err := conn.Exec(ctx, stmts[0].SQL, stmts[0].Args...)
		return 0, err
	}
	if i, err := e.checkStatements(ctx, conn, stmts); err != nil {
		return i, err
	}
	b := &pgx.Batch{}
	for _, q := range stmts {
		b.Queue(q.SQL, q.Args...)
	}
	br := conn.SendBatch(ctx, b)
	for i := range stmts {
		if _, err := br.Exec(); err != nil {
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

// maxDescribed bounds the engine's cache of statement descriptions.
const maxDescribed = 4096

// checkStatements describes each statement (from the engine's cache, or
// with a round trip) and encodes its arguments, without running anything.
func (e *PostgresEngine) checkStatements(ctx context.Context, conn *pgx.Conn, stmts []Querystring) (int, error) {
	var eqb pgx.ExtendedQueryBuilder
	for i, q := range stmts {
		sd, cached := e.described.Load(q.SQL)
		for {
			if !cached {
				d, err := conn.PgConn().Prepare(ctx, "", q.SQL, nil)
				if err != nil {
					return i, err
				}
				if e.describedCount.Add(1) <= maxDescribed {
					e.described.Store(q.SQL, d)
				}
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
	return 0, nil
}

// isDataStatement reports whether sql starts, after blanks and comments,
// with a keyword of a statement that reads or writes rows but cannot change
// the schema a later statement is prepared against.
func isDataStatement(sql string) bool {
	for {
		sql = strings.TrimLeft(sql, " \t\r\n\f(")
		switch {
		case strings.HasPrefix(sql, "--"):
			end := strings.IndexByte(sql, '\n')
			if end < 0 {
				return false
			}
			sql = sql[end+1:]
		case strings.HasPrefix(sql, "/*"):
			end := strings.Index(sql, "*/")
			if end < 0 {
				return false
			}
			sql = sql[end+2:]
		default:
			end := strings.IndexFunc(sql, func(r rune) bool { return !unicode.IsLetter(r) })
			if end < 0 {
				end = len(sql)
			}
			switch strings.ToUpper(sql[:end]) {
			case "SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "VALUES", "TABLE", "MERGE":
				return true
			}
			return false
		}
	}
}
