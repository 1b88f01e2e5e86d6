package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/pgtest"
)

// The round-trip workloads: issue 12's table, each hand-written in pgx and
// written with piccolo-go, on pools of one connection whose round trips
// are counted (the engine's TestRoundTrips asserts the engine's counts
// exactly; here they stand beside the times).

// rtPeers are a pgxpool and an engine of one connection each, whose round
// trips are counted, optionally through a latencyProxy.
type rtPeers struct {
	pool        *pgxpool.Pool
	engine      *piccolo.PostgresEngine
	poolTurns   pgtest.RoundTrips
	engineTurns pgtest.RoundTrips
}

// openRTPeers connects to dsn, through proxy if it is not nil.
func openRTPeers(ctx context.Context, dsn string, proxy *latencyProxy) (_ *rtPeers, err error) {
	p := &rtPeers{}
	configure := func(counter *pgtest.RoundTrips) func(*pgxpool.Config) {
		return func(c *pgxpool.Config) {
			c.MaxConns = 1
			// Pool pings are the pool's hygiene, not the workload's.
			c.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
			dial := c.ConnConfig.DialFunc
			if proxy != nil {
				dial = proxy.dial
			}
			c.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
				conn, err := dial(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return counter.Conn(conn), nil
			}
		}
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgxpool: parse DSN: %w", err)
	}
	configure(&p.poolTurns)(cfg)
	if p.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("pgxpool: %w", err)
	}
	if p.engine, err = piccolo.NewPostgresEngine(piccolo.PostgresConfig{DSN: dsn, Configure: configure(&p.engineTurns)}); err != nil {
		p.pool.Close()
		return nil, fmt.Errorf("piccolo: %w", err)
	}
	if err := p.engine.StartConnectionPool(ctx); err != nil {
		p.close()
		return nil, fmt.Errorf("piccolo: %w", err)
	}
	return p, nil
}

func (p *rtPeers) close() {
	p.engine.Close()
	p.pool.Close()
}

// rtWorkload is a row of issue 12's table: what pgx and piccolo-go each do,
// and the round trips the issue gives as the protocol's minimum.
type rtWorkload struct {
	name    string
	target  int // the target for piccolo-go
	inserts int // rows each op leaves in items
	pgx     func(ctx context.Context, pool *pgxpool.Pool, i int) error
	piccolo func(ctx context.Context, e *piccolo.PostgresEngine, i int) error
}

// rtBatchSQL reads the 1,000 seeded rows.
const rtBatchSQL = "SELECT " + itemColumns + " FROM items WHERE id <= 1000 ORDER BY id"

// rtWorkloads returns issue 12's table.
func rtWorkloads() []rtWorkload {
	insert := func(ctx context.Context, run func(ctx context.Context, sql string, args ...any) error, i int) error {
		it := newItem(i)
		return run(ctx, insertPlain, itemArgs(&it)...)
	}
	pgxExec := func(tx pgx.Tx) func(ctx context.Context, sql string, args ...any) error {
		return func(ctx context.Context, sql string, args ...any) error {
			_, err := tx.Exec(ctx, sql, args...)
			return err
		}
	}
	engineExec := func(e *piccolo.PostgresEngine) func(ctx context.Context, sql string, args ...any) error {
		return func(ctx context.Context, sql string, args ...any) error {
			_, err := e.Exec(ctx, piccolo.Querystring{SQL: sql, Args: args})
			return err
		}
	}
	pgxTx := func(body func(ctx context.Context, tx pgx.Tx, i int) error) func(context.Context, *pgxpool.Pool, int) error {
		return func(ctx context.Context, pool *pgxpool.Pool, i int) error {
			return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return body(ctx, tx, i) })
		}
	}
	engineTx := func(body func(ctx context.Context, e *piccolo.PostgresEngine, i int) error) func(context.Context, *piccolo.PostgresEngine, int) error {
		return func(ctx context.Context, e *piccolo.PostgresEngine, i int) error {
			return e.Transaction(ctx, func(ctx context.Context) error { return body(ctx, e, i) })
		}
	}
	const forUpdate = "SELECT qty FROM items WHERE id = $1 FOR UPDATE"
	return []rtWorkload{
		{name: "point select", target: 1,
			pgx: func(ctx context.Context, pool *pgxpool.Pool, i int) error {
				var it Item
				return scanItem(pool.QueryRow(ctx, selectByID, pointID(i)), &it)
			},
			piccolo: func(ctx context.Context, e *piccolo.PostgresEngine, i int) error {
				var it Item
				return e.QueryFunc(ctx, piccolo.Querystring{SQL: selectByID, Args: []any{pointID(i)}},
					func(r pgx.Rows) error { return scanItem(r, &it) })
			}},
		{name: "empty transaction", target: 0,
			pgx:     pgxTx(func(context.Context, pgx.Tx, int) error { return nil }),
			piccolo: engineTx(func(context.Context, *piccolo.PostgresEngine, int) error { return nil })},
		{name: "transaction with one INSERT", target: 2, inserts: 1,
			pgx: pgxTx(func(ctx context.Context, tx pgx.Tx, i int) error { return insert(ctx, pgxExec(tx), i) }),
			piccolo: engineTx(func(ctx context.Context, e *piccolo.PostgresEngine, i int) error {
				return insert(ctx, engineExec(e), i)
			})},
		{name: "SELECT ... FOR UPDATE, then UPDATE", target: 3,
			pgx: pgxTx(func(ctx context.Context, tx pgx.Tx, i int) error {
				var qty int32
				if err := tx.QueryRow(ctx, forUpdate, pointID(i)).Scan(&qty); err != nil {
					return err
				}
				return pgxExec(tx)(ctx, updateQty, (qty+1)%1000, pointID(i))
			}),
			piccolo: engineTx(func(ctx context.Context, e *piccolo.PostgresEngine, i int) error {
				var qty int32
				err := e.QueryFunc(ctx, piccolo.Querystring{SQL: forUpdate, Args: []any{pointID(i)}},
					func(r pgx.Rows) error { return r.Scan(&qty) })
				if err != nil {
					return err
				}
				return engineExec(e)(ctx, updateQty, (qty+1)%1000, pointID(i))
			})},
		{name: "transaction of 10 INSERTs", target: 11, inserts: 10,
			pgx: pgxTx(func(ctx context.Context, tx pgx.Tx, i int) error {
				return repeat(10, func(j int) error { return insert(ctx, pgxExec(tx), i*10+j) })
			}),
			piccolo: engineTx(func(ctx context.Context, e *piccolo.PostgresEngine, i int) error {
				return repeat(10, func(j int) error { return insert(ctx, engineExec(e), i*10+j) })
			})},
		{name: "INSERT, then a savepoint block of one INSERT", target: 3, inserts: 2,
			pgx: pgxTx(func(ctx context.Context, tx pgx.Tx, i int) error {
				if err := insert(ctx, pgxExec(tx), i); err != nil {
					return err
				}
				return pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error { return insert(ctx, pgxExec(sp), i) })
			}),
			piccolo: engineTx(func(ctx context.Context, e *piccolo.PostgresEngine, i int) error {
				if err := insert(ctx, engineExec(e), i); err != nil {
					return err
				}
				return e.Transaction(ctx, func(ctx context.Context) error { return insert(ctx, engineExec(e), i) },
					piccolo.Nesting(piccolo.NestSavepoint))
			})},
		{name: "Atomic of 10 INSERTs (pgx: Begin, SendBatch, Commit)", target: 1, inserts: 10,
			pgx: pgxTx(func(ctx context.Context, tx pgx.Tx, i int) error {
				b := &pgx.Batch{}
				for j := range 10 {
					it := newItem(i*10 + j)
					b.Queue(insertPlain, itemArgs(&it)...)
				}
				return tx.SendBatch(ctx, b).Close()
			}),
			piccolo: func(ctx context.Context, e *piccolo.PostgresEngine, i int) error {
				a := e.Atomic()
				for j := range 10 {
					it := newItem(i*10 + j)
					a.Add(piccolo.Raw(insertPlain, itemArgs(&it)...))
				}
				return a.Run(ctx)
			}},
		{name: "Batch of 1,000 rows by 100, outside a transaction", target: 12,
			pgx: pgxTx(func(ctx context.Context, tx pgx.Tx, _ int) error {
				if _, err := tx.Exec(ctx, "DECLARE c NO SCROLL CURSOR FOR "+rtBatchSQL); err != nil {
					return err
				}
				var n int64
				for {
					rows, err := tx.Query(ctx, "FETCH FORWARD "+strconv.Itoa(100)+" FROM c")
					if err != nil {
						return err
					}
					var it Item
					got, err := countRows(rows, func() error { return scanItem(rows, &it) })
					if err != nil {
						return err
					}
					if n += got; got < 100 {
						return checkCount("batch", n, 1000)
					}
				}
			}),
			piccolo: func(ctx context.Context, e *piccolo.PostgresEngine, _ int) error {
				b, err := e.Batch(ctx, piccolo.Raw(rtBatchSQL), piccolo.BatchSize(100))
				if err != nil {
					return err
				}
				var n int64
				var it Item
				for {
					got, err := b.NextFunc(ctx, func(r pgx.Rows) error { return scanItem(r, &it) })
					if err != nil {
						return err
					}
					if n += int64(got); got == 0 {
						return checkCount("batch", n, 1000)
					}
				}
			}},
	}
}

// rtCases returns the benchmark cases of the round-trip workloads on p,
// their workloads named with suffix.
func rtCases(p *rtPeers, suffix string) []benchCase {
	var cases []benchCase
	for _, w := range rtWorkloads() {
		cases = append(cases, caseList{
			{peer: peerPgxPool, baseline: true, op: func(ctx context.Context, i int) error { return w.pgx(ctx, p.pool, i) }},
			{peer: peerPiccoloE, op: func(ctx context.Context, i int) error { return w.piccolo(ctx, p.engine, i) }},
		}.withWorkload(w.name+suffix).inserting(w.inserts)...)
	}
	return cases
}

// rtCount is a workload's round trips, pgx's and piccolo-go's.
type rtCount struct {
	pgx, piccolo int
}

// countTurns counts each workload's round trips on warm statements: each
// runs twice, then once counted.
func countTurns(ctx context.Context, p *rtPeers) ([]rtCount, error) {
	count := func(counter *pgtest.RoundTrips, op func(ctx context.Context, i int) error) (int, error) {
		for i := range 3 {
			if i == 2 {
				counter.Reset()
			}
			if err := op(ctx, 1_000_000+i); err != nil {
				return 0, err
			}
		}
		return counter.Count(), nil
	}
	var out []rtCount
	for _, w := range rtWorkloads() {
		var c rtCount
		var errPgx, errPic error
		c.pgx, errPgx = count(&p.poolTurns, func(ctx context.Context, i int) error { return w.pgx(ctx, p.pool, i) })
		c.piccolo, errPic = count(&p.engineTurns, func(ctx context.Context, i int) error { return w.piccolo(ctx, p.engine, i) })
		if err := errors.Join(errPgx, errPic); err != nil {
			return nil, fmt.Errorf("count round trips of %s: %w", w.name, err)
		}
		out = append(out, c)
	}
	return out, nil
}
