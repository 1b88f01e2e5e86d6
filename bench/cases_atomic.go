package main

import (
	"context"
	"database/sql"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
	"github.com/uptrace/bun"
	"gorm.io/gorm"
)

// atomic100 runs 100 plain inserts (no RETURNING) all or nothing.
func atomic100(p *peers) []benchCase {
	const n = 100
	rows := newBulkRows(n)
	queue := func(b *pgx.Batch) {
		for j := range n {
			b.Queue(insertPlain, itemArgs(&rows.rows[j])...)
		}
	}
	checkBatch := func(br pgx.BatchResults) error {
		for range n {
			tag, err := br.Exec()
			if err != nil {
				return errors.Join(err, br.Close())
			}
			if err := checkCount("insert", tag.RowsAffected(), 1); err != nil {
				return errors.Join(err, br.Close())
			}
		}
		return br.Close()
	}
	gormOneByOne := func(_ context.Context, tx *gorm.DB, _ int) error {
		return repeat(n, func(j int) error { return gormInsertRow(tx, j) })
	}
	return caseList{
		{peer: "pgx pipeline (pool.Begin, SendBatch, Commit)", baseline: true, op: inPgxTx(p.pool,
			func(ctx context.Context, tx pgx.Tx, _ int) error {
				b := &pgx.Batch{}
				queue(b)
				return checkBatch(tx.SendBatch(ctx, b))
			})},
		{peer: "pgx pipeline (BEGIN…COMMIT in one batch)", op: func(ctx context.Context, _ int) error {
			b := &pgx.Batch{}
			b.Queue("BEGIN")
			queue(b)
			b.Queue("COMMIT")
			br := p.pool.SendBatch(ctx, b)
			if _, err := br.Exec(); err != nil {
				return errors.Join(err, br.Close())
			}
			return checkBatch(br) // reads the 100 inserts; Close reads COMMIT's result
		}},
		{peer: "pgconn pipeline, unnamed statements (Atomic's method)", op: inPgxTx(p.pool,
			func(ctx context.Context, tx pgx.Tx, _ int) error {
				conn := tx.Conn()
				batch := &pgconn.Batch{}
				var eqb pgx.ExtendedQueryBuilder
				for j := range n {
					if err := eqb.Build(conn.TypeMap(), nil, itemArgs(&rows.rows[j])); err != nil {
						return err
					}
					batch.ExecParams(insertPlain, eqb.ParamValues, nil, eqb.ParamFormats, eqb.ResultFormats)
				}
				results, err := conn.PgConn().ExecBatch(ctx, batch).ReadAll()
				if err != nil {
					return err
				}
				for _, r := range results {
					if err := checkCount("insert", r.CommandTag.RowsAffected(), 1); err != nil {
						return err
					}
				}
				return checkCount("pipeline results", int64(len(results)), n)
			})},
		{peer: "pgx one by one (pool tx)", op: inPgxTx(p.pool, func(ctx context.Context, tx pgx.Tx, _ int) error {
			return repeat(n, func(j int) error {
				tag, err := tx.Exec(ctx, insertPlain, itemArgs(&rows.rows[j])...)
				if err != nil {
					return err
				}
				return checkCount("insert", tag.RowsAffected(), 1)
			})
		})},
		{peer: peerPiccoloAt + " (Raw)", op: func(ctx context.Context, _ int) error {
			a := p.engine.Atomic()
			for j := range n {
				a.Add(piccolo.Raw(insertPlain, itemArgs(&rows.rows[j])...))
			}
			return a.Run(ctx)
		}},
		{peer: peerPiccoloAt + " (query Insert)", op: func(ctx context.Context, _ int) error {
			rows.reset()
			a := p.engine.Atomic()
			for j := range n {
				a.Add(items.Insert(rows.ptrs[j]))
			}
			return a.Run(ctx)
		}},
		{peer: "piccolo-go one by one (Transaction, Exec)", op: inPiccoloTx(p, func(ctx context.Context, _ int) error {
			return repeat(n, func(j int) error {
				tag, err := p.engine.Exec(ctx, piccolo.Querystring{SQL: insertPlain, Args: itemArgs(&rows.rows[j])})
				if err != nil {
					return err
				}
				return checkCount("insert", tag.RowsAffected(), 1)
			})
		})},
		{peer: peerSQL + " one by one", op: inSQLTx(p.sqlDB, func(ctx context.Context, tx *sql.Tx, _ int) error {
			return repeat(n, func(j int) error {
				res, err := tx.ExecContext(ctx, insertPlain, itemArgs(&rows.rows[j])...)
				if err != nil {
					return err
				}
				return checkResult("insert", res, 1)
			})
		})},
		{peer: peerGorm + " one by one", op: inGormTx(p.gorm, gormOneByOne)},
		{peer: peerGormP + " one by one", op: inGormTx(p.gormP, gormOneByOne)},
		{peer: peerBun + " one by one", op: inBunTx(p.bun, func(ctx context.Context, tx bun.Tx, _ int) error {
			return repeat(n, func(j int) error { return bunInsertRow(ctx, tx, j) })
		})},
	}.withWorkload(wlAtomic).inserting(n)
}
