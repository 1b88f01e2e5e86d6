package main

import (
	"context"
	"database/sql"

	"github.com/jackc/pgx/v5"
	"github.com/piccolo-go/piccolo"
	"github.com/uptrace/bun"
	"gorm.io/gorm"
)

// The single-row inserts, each library's way, all with RETURNING id (the
// ORMs always read the id back): the insert workload and the transaction
// workloads run them.

func pgxInsertRow(ctx context.Context, q interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}, i int) error {
	it := newItem(i)
	if err := q.QueryRow(ctx, insertItem, itemArgs(&it)...).Scan(&it.ID); err != nil {
		return err
	}
	return checkNewID(it.ID)
}

// sqlInsertRow takes the *sql.Tx itself: through an interface its
// arguments would escape, two allocations database/sql does not make.
func sqlInsertRow(ctx context.Context, tx *sql.Tx, i int) error {
	it := newItem(i)
	if err := tx.QueryRowContext(ctx, insertItem, itemArgs(&it)...).Scan(&it.ID); err != nil {
		return err
	}
	return checkNewID(it.ID)
}

func gormInsertRow(g *gorm.DB, i int) error {
	it := newItem(i)
	if err := g.Create(&it).Error; err != nil {
		return err
	}
	return checkNewID(it.ID)
}

// bunInsertRow is generic so that a bun.Tx is not boxed into bun.IDB (an
// allocation the other libraries do not pay).
func bunInsertRow[DB interface{ NewInsert() *bun.InsertQuery }](ctx context.Context, db DB, i int) error {
	it := newBunItem(i)
	if _, err := db.NewInsert().Model(&it).Exec(ctx); err != nil {
		return err
	}
	return checkNewID(it.ID)
}

func piccoloInsertQ(ctx context.Context, p *peers, i int) error {
	it := newItem(i)
	if err := items.Insert(&it).Run(ctx, p.engine); err != nil {
		return err
	}
	return checkNewID(it.ID)
}

func piccoloInsertE(ctx context.Context, p *peers, i int) error {
	it := newItem(i)
	err := p.engine.QueryFunc(ctx, piccolo.Querystring{SQL: insertItem, Args: itemArgs(&it)},
		func(r pgx.Rows) error { return r.Scan(&it.ID) })
	if err != nil {
		return err
	}
	return checkNewID(it.ID)
}

func insertOne(p *peers) []benchCase {
	pgxInsert := func(r pgxRunner) op {
		return func(ctx context.Context, i int) error { return pgxInsertRow(ctx, r, i) }
	}
	gormInsert := func(g *gorm.DB) op {
		return func(ctx context.Context, i int) error { return gormInsertRow(g.WithContext(ctx), i) }
	}
	piccoloInsert := func(insert piccoloInsert) op {
		return func(ctx context.Context, i int) error { return insert(ctx, p, i) }
	}
	return caseList{
		{peer: peerPgxConn, op: pgxInsert(p.conn)},
		{peer: peerPgxPool, baseline: true, op: pgxInsert(p.pool)},
		{peer: peerSQL, op: func(ctx context.Context, i int) error {
			it := newItem(i)
			if err := p.sqlDB.QueryRowContext(ctx, insertItem, itemArgs(&it)...).Scan(&it.ID); err != nil {
				return err
			}
			return checkNewID(it.ID)
		}},
		{peer: peerSqlx, op: func(ctx context.Context, i int) error {
			it := newItem(i)
			if err := p.sqlxDB.QueryRowxContext(ctx, insertItem, itemArgs(&it)...).Scan(&it.ID); err != nil {
				return err
			}
			return checkNewID(it.ID)
		}},
		{peer: peerGorm, op: gormInsert(p.gorm)},
		{peer: peerGormP, op: gormInsert(p.gormP)},
		{peer: peerBun, op: func(ctx context.Context, i int) error { return bunInsertRow(ctx, p.bun, i) }},
		{peer: peerPiccoloQ, op: piccoloInsert(piccoloInsertQ)},
		{peer: peerPiccoloE, op: piccoloInsert(piccoloInsertE)},
	}.withWorkload(wlInsert).inserting(1)
}

func updateOne(p *peers) []benchCase {
	pgxUpdate := func(r pgxRunner) func(context.Context, int) error {
		return func(ctx context.Context, i int) error {
			tag, err := r.Exec(ctx, updateQty, int32(i), pointID(i))
			if err != nil {
				return err
			}
			return checkCount("update", tag.RowsAffected(), 1)
		}
	}
	sqlUpdate := func(db interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	}) func(context.Context, int) error {
		return func(ctx context.Context, i int) error {
			res, err := db.ExecContext(ctx, updateQty, int32(i), pointID(i))
			if err != nil {
				return err
			}
			return checkResult("update", res, 1)
		}
	}
	gormUpdate := func(g *gorm.DB) func(context.Context, int) error {
		return func(ctx context.Context, i int) error {
			res := g.WithContext(ctx).Model(&Item{}).Where("id = ?", pointID(i)).Update("qty", int32(i))
			if res.Error != nil {
				return res.Error
			}
			return checkCount("update", res.RowsAffected, 1)
		}
	}
	return caseList{
		{peer: peerPgxConn, op: pgxUpdate(p.conn)},
		{peer: peerPgxPool, baseline: true, op: pgxUpdate(p.pool)},
		{peer: peerSQL, op: sqlUpdate(p.sqlDB)},
		{peer: peerSqlx, op: sqlUpdate(p.sqlxDB)},
		{peer: peerGorm, op: gormUpdate(p.gorm)},
		{peer: peerGormP, op: gormUpdate(p.gormP)},
		{peer: peerBun, op: func(ctx context.Context, i int) error {
			res, err := p.bun.NewUpdate().Model((*bunItem)(nil)).Set("qty = ?", int32(i)).Where("id = ?", pointID(i)).Exec(ctx)
			if err != nil {
				return err
			}
			return checkResult("update", res, 1)
		}},
		{peer: peerPiccoloQ, op: func(ctx context.Context, i int) error {
			n, err := items.Update(itemQty.Set(int32(i))).Where(itemID.Eq(pointID(i))).Run(ctx, p.engine)
			if err != nil {
				return err
			}
			return checkCount("update", n, 1)
		}},
		{peer: peerPiccoloE, op: func(ctx context.Context, i int) error {
			tag, err := p.engine.Exec(ctx, piccolo.Querystring{SQL: updateQty, Args: []any{int32(i), pointID(i)}})
			if err != nil {
				return err
			}
			return checkCount("update", tag.RowsAffected(), 1)
		}},
	}.withWorkload(wlUpdate)
}
