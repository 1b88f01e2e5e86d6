package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/pgtest"
)

// roundTripEngine returns a pooled engine of one connection (else
// configured by cfg) whose turns counter counts, and a table of its own.
// Pool pings are turned off: they are the pool's hygiene, not the
// workload's.
func roundTripEngine(t *testing.T, cfg piccolo.PostgresConfig) (*piccolo.PostgresEngine, string, *pgtest.RoundTrips) {
	t.Helper()
	counter := &pgtest.RoundTrips{}
	cfg.MaxConns = 1
	cfg.Configure = func(pc *pgxpool.Config) {
		pc.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
		wrapDial(counter.Conn)(pc)
	}
	e := newEngine(t, true, cfg)
	return e, newTable(t, e), counter
}

// readBatch reads the rows of a Batch of n rows by size to their end.
func readBatch(ctx context.Context, e *piccolo.PostgresEngine, n, size int) error {
	b, err := e.Batch(ctx, piccolo.Raw("SELECT g FROM generate_series(1, $1::int) AS g", n), piccolo.BatchSize(size))
	if err != nil {
		return err
	}
	seen := 0
	for rows, err := range b.All(ctx) {
		if err != nil {
			return err
		}
		seen += len(rows)
	}
	if seen != n {
		return fmt.Errorf("the batch read %d rows, want %d", seen, n)
	}
	return nil
}

// roundTripCase is a workload whose round trips are counted: run does it
// once (its names made unique by run) and checks its outcome.
type roundTripCase struct {
	name string
	// turns in each of roundTripModes; a failed statement costs pgx's
	// statement cache a prepare more the next time it runs.
	turns [2]int
	run   func(ctx context.Context, e *piccolo.PostgresEngine, table string, run int) error
	check func(ctx context.Context, e *piccolo.PostgresEngine, table string, run int) error // after the count; nil: none
}

// roundTripModes are the exec modes the counts are taken in: pgx's
// default, and the one for PgBouncer in transaction pooling mode.
var roundTripModes = []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe}

var sp = piccolo.Nesting(piccolo.NestSavepoint)

func roundTripCases() []roundTripCase {
	insertN := func(ctx context.Context, e *piccolo.PostgresEngine, table string, run, n int) error {
		for i := range n {
			if err := insert(ctx, e, table, fmt.Sprintf("r%d-%d", run, i)); err != nil {
				return err
			}
		}
		return nil
	}
	return []roundTripCase{
		{"point select", [2]int{1, 1}, func(ctx context.Context, e *piccolo.PostgresEngine, table string, _ int) error {
			var name string
			return e.QueryFunc(ctx, piccolo.Querystring{SQL: "SELECT name FROM " + table + " WHERE id = $1", Args: []any{1}},
				func(rows pgx.Rows) error { return rows.Scan(&name) })
		}, nil},
		{"empty transaction", [2]int{0, 0}, func(ctx context.Context, e *piccolo.PostgresEngine, _ string, _ int) error {
			return e.Transaction(ctx, func(context.Context) error { return nil })
		}, nil},
		{"transaction with one INSERT", [2]int{2, 2}, func(ctx context.Context, e *piccolo.PostgresEngine, table string, run int) error {
			return e.Transaction(ctx, func(ctx context.Context) error { return insertN(ctx, e, table, run, 1) })
		}, nil},
		{"SELECT FOR UPDATE, then UPDATE", [2]int{3, 3}, func(ctx context.Context, e *piccolo.PostgresEngine, table string, _ int) error {
			return e.Transaction(ctx, func(ctx context.Context) error {
				var n int
				err := e.QueryFunc(ctx, piccolo.Querystring{SQL: "SELECT n FROM " + table + " WHERE id = $1 FOR UPDATE", Args: []any{1}},
					func(rows pgx.Rows) error { return rows.Scan(&n) })
				if err != nil {
					return err
				}
				_, err = e.Exec(ctx, piccolo.Querystring{SQL: "UPDATE " + table + " SET n = $1 WHERE id = $2", Args: []any{n + 1, 1}})
				return err
			})
		}, nil},
		{"transaction of 10 INSERTs", [2]int{11, 11}, func(ctx context.Context, e *piccolo.PostgresEngine, table string, run int) error {
			return e.Transaction(ctx, func(ctx context.Context) error { return insertN(ctx, e, table, run, 10) })
		}, nil},
		{"INSERT, then a savepoint block with one INSERT", [2]int{3, 3}, func(ctx context.Context, e *piccolo.PostgresEngine, table string, run int) error {
			return e.Transaction(ctx, func(ctx context.Context) error {
				if err := insert(ctx, e, table, fmt.Sprintf("r%d-outer", run)); err != nil {
					return err
				}
				return e.Transaction(ctx, func(ctx context.Context) error {
					return insert(ctx, e, table, fmt.Sprintf("r%d-inner", run))
				}, sp)
			})
		}, nil},
		{"Atomic of 10 INSERTs", [2]int{1, 1}, func(ctx context.Context, e *piccolo.PostgresEngine, table string, run int) error {
			a := e.Atomic()
			for i := range 10 {
				a.Add(piccolo.Raw("INSERT INTO "+table+" (name) VALUES ($1)", fmt.Sprintf("r%d-a%d", run, i)))
			}
			return a.Run(ctx)
		}, nil},
		// Routing rule 7: the WAL position rides with COMMIT.
		{"transaction with one INSERT, read-your-writes", [2]int{2, 2}, func(ctx context.Context, e *piccolo.PostgresEngine, table string, run int) error {
			rctx := piccolo.WithReadYourWrites(ctx)
			if err := e.Transaction(rctx, func(ctx context.Context) error { return insertN(ctx, e, table, run, 1) }); err != nil {
				return err
			}
			return positionRecorded(rctx)
		}, nil},
		{"Atomic of 10 INSERTs, read-your-writes", [2]int{1, 1}, func(ctx context.Context, e *piccolo.PostgresEngine, table string, run int) error {
			rctx := piccolo.WithReadYourWrites(ctx)
			a := e.Atomic()
			for i := range 10 {
				a.Add(piccolo.Raw("INSERT INTO "+table+" (name) VALUES ($1)", fmt.Sprintf("r%d-a%d", run, i)))
			}
			if err := a.Run(rctx); err != nil {
				return err
			}
			return positionRecorded(rctx)
		}, nil},
		{"INSERT outside a transaction, read-your-writes", [2]int{2, 2}, func(ctx context.Context, e *piccolo.PostgresEngine, table string, run int) error {
			rctx := piccolo.WithReadYourWrites(ctx)
			if err := insertN(rctx, e, table, run, 1); err != nil {
				return err
			}
			return positionRecorded(rctx)
		}, nil},
		{"Batch of 1,000 rows by 100, outside a transaction", [2]int{12, 12}, func(ctx context.Context, e *piccolo.PostgresEngine, _ string, _ int) error {
			return readBatch(ctx, e, 1000, 100)
		}, nil},
		// Open with the first FETCH, 2 FETCHes (the last one short), COMMIT.
		{"Batch of 2,002 rows by 1,001, outside a transaction", [2]int{4, 4}, func(ctx context.Context, e *piccolo.PostgresEngine, _ string, _ int) error {
			return readBatch(ctx, e, 2002, 1001)
		}, nil},

		// Failures: the same outcomes as separate sends.
		{"transaction whose first statement fails", [2]int{2, 2}, func(ctx context.Context, e *piccolo.PostgresEngine, table string, _ int) error {
			err := e.Transaction(ctx, func(ctx context.Context) error { return insert(ctx, e, table, "seed") })
			if !isUniqueViolation(err) {
				return fmt.Errorf("the duplicate INSERT returned %v, want its unique violation", err)
			}
			return nil
		}, nil},
		{"savepoint block whose INSERT fails, then commit", [2]int{4, 4}, func(ctx context.Context, e *piccolo.PostgresEngine, table string, run int) error {
			kept := fmt.Sprintf("r%d-kept", run)
			err := e.Transaction(ctx, func(ctx context.Context) error {
				if err := insert(ctx, e, table, kept); err != nil {
					return err
				}
				inner := e.Transaction(ctx, func(ctx context.Context) error { return insert(ctx, e, table, "seed") }, sp)
				if !isUniqueViolation(inner) {
					return fmt.Errorf("the block's duplicate INSERT returned %v, want its unique violation", inner)
				}
				return nil
			})
			return err
		}, func(ctx context.Context, e *piccolo.PostgresEngine, table string, run int) error {
			return wantNames(ctx, e, table, fmt.Sprintf("r%d-kept", run), 1)
		}},
		{"Atomic whose 5th statement fails", [2]int{2, 2}, func(ctx context.Context, e *piccolo.PostgresEngine, table string, run int) error {
			a := e.Atomic()
			for i := range 10 {
				name := fmt.Sprintf("r%d-f%d", run, i)
				if i == 4 {
					name = "seed"
				}
				a.Add(piccolo.Raw("INSERT INTO "+table+" (name) VALUES ($1)", name))
			}
			err := a.Run(ctx)
			var ae *piccolo.AtomicError
			if !errors.As(err, &ae) || ae.Index != 4 || !isUniqueViolation(err) {
				return fmt.Errorf("the Atomic returned %v, want an *AtomicError at index 4 with the unique violation", err)
			}
			return nil
		}, func(ctx context.Context, e *piccolo.PostgresEngine, table string, run int) error {
			return wantNames(ctx, e, table, fmt.Sprintf("r%d-f0", run), 0)
		}},
	}
}

// positionRecorded checks that a commit under ctx recorded its WAL position.
func positionRecorded(ctx context.Context) error {
	if p := piccolo.ReadAfter(ctx); p == 0 || p == piccolo.LSN(^uint64(0)) {
		return fmt.Errorf("position after the commit: %v", p)
	}
	return nil
}

// isUniqueViolation reports whether err is a *StatementError carrying
// PostgreSQL's 23505.
func isUniqueViolation(err error) bool {
	var se *piccolo.StatementError
	var pgErr *pgconn.PgError
	return errors.As(err, &se) && errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// wantNames checks that table holds want rows named name.
func wantNames(ctx context.Context, e *piccolo.PostgresEngine, table, name string, want int) error {
	rows, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT 1 FROM " + table + " WHERE name = $1", Args: []any{name}})
	if err != nil {
		return err
	}
	if len(rows) != want {
		return fmt.Errorf("%d rows named %q, want %d", len(rows), name, want)
	}
	return nil
}

// TestRoundTrips counts each workload's round trips on warm statements
// (each workload runs twice first) with a counting net.Conn: a protocol
// property, asserted exactly.
func TestRoundTrips(t *testing.T) {
	t.Parallel()
	for m, mode := range roundTripModes {
		t.Run(mode.String(), func(t *testing.T) {
			e, table, counter := roundTripEngine(t, piccolo.PostgresConfig{QueryExecMode: mode})
			ctx := context.Background()
			mustInsert(t, ctx, e, table, "seed")
			var got []string
			for i, c := range roundTripCases() {
				for r := range 3 {
					run := 3*i + r // names unique across cases
					counter.Reset()
					if err := c.run(ctx, e, table, run); err != nil {
						t.Fatalf("%s: %v", c.name, err)
					}
					n := counter.Count()
					if c.check != nil {
						if err := c.check(ctx, e, table, run); err != nil {
							t.Fatalf("%s: %v", c.name, err)
						}
					}
					if r == 2 {
						got = append(got, fmt.Sprintf("%s: %d", c.name, n))
						if n != c.turns[m] {
							t.Errorf("%s: %d round trips, want %d", c.name, n, c.turns[m])
						}
					}
				}
			}
			t.Logf("round trips:\n%s", strings.Join(got, "\n"))
		})
	}
}
