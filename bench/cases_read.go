package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/piccolo-go/piccolo"
	"gorm.io/gorm"
)

func pointReads(p *peers) []benchCase {
	pgxRead := func(r pgxRunner) func(context.Context, int) error {
		return func(ctx context.Context, i int) error {
			id := pointID(i)
			var it Item
			if err := scanItem(r.QueryRow(ctx, selectByID, id), &it); err != nil {
				return err
			}
			return checkItem(&it, id)
		}
	}
	gormRead := func(g *gorm.DB) func(context.Context, int) error {
		return func(ctx context.Context, i int) error {
			id := pointID(i)
			var it Item
			if err := g.WithContext(ctx).First(&it, id).Error; err != nil {
				return err
			}
			return checkItem(&it, id)
		}
	}
	return caseList{
		{peer: peerPgxConn, op: pgxRead(p.conn)},
		{peer: peerPgxPool, baseline: true, op: pgxRead(p.pool)},
		{peer: peerSQL, op: func(ctx context.Context, i int) error {
			id := pointID(i)
			var it Item
			if err := scanItem(p.sqlDB.QueryRowContext(ctx, selectByID, id), &it); err != nil {
				return err
			}
			return checkItem(&it, id)
		}},
		{peer: peerSqlx, op: func(ctx context.Context, i int) error {
			id := pointID(i)
			var it Item
			if err := p.sqlxDB.GetContext(ctx, &it, selectByID, id); err != nil {
				return err
			}
			return checkItem(&it, id)
		}},
		{peer: peerGorm, op: gormRead(p.gorm)},
		{peer: peerGormP, op: gormRead(p.gormP)},
		{peer: peerBun, op: func(ctx context.Context, i int) error {
			id := pointID(i)
			var it bunItem
			if err := p.bun.NewSelect().Model(&it).Where("id = ?", id).Scan(ctx); err != nil {
				return err
			}
			return checkItem(&Item{ID: it.ID, Name: it.Name}, id)
		}},
		{peer: peerPiccoloQ, op: func(ctx context.Context, i int) error {
			id := pointID(i)
			it, err := items.Select().Where(itemID.Eq(id)).First(ctx, p.engine)
			if err != nil {
				return err
			}
			return checkItem(&it, id)
		}},
		{peer: peerPiccoloE, op: func(ctx context.Context, i int) error {
			id := pointID(i)
			var it Item
			err := p.engine.QueryFunc(ctx, piccolo.Querystring{SQL: selectByID, Args: []any{id}},
				func(r pgx.Rows) error { return scanItem(r, &it) })
			if err != nil {
				return err
			}
			return checkItem(&it, id)
		}},
	}.withWorkload(wlPointTyped)
}

// sqlRowMap scans the current row of rows into a map, the way
// database/sql users do it.
func sqlRowMap(rows *sql.Rows) (map[string]any, error) {
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	m := make(map[string]any, len(cols))
	for i, c := range cols {
		m[c] = vals[i]
	}
	return m, nil
}

func pointReadMaps(p *peers) []benchCase {
	pgxMap := func(r pgxRunner) func(context.Context, int) error {
		return func(ctx context.Context, i int) error {
			id := pointID(i)
			rows, err := r.Query(ctx, selectByID, id)
			if err != nil {
				return err
			}
			m, err := pgx.CollectExactlyOneRow(rows, pgx.RowToMap)
			if err != nil {
				return err
			}
			return checkMapID(m, id)
		}
	}
	gormMap := func(g *gorm.DB) func(context.Context, int) error {
		return func(ctx context.Context, i int) error {
			id := pointID(i)
			var m map[string]any
			if err := g.WithContext(ctx).Table("items").Where("id = ?", id).Take(&m).Error; err != nil {
				return err
			}
			return checkMapID(m, id)
		}
	}
	return caseList{
		{peer: peerPgxConn, op: pgxMap(p.conn)},
		{peer: peerPgxPool, baseline: true, op: pgxMap(p.pool)},
		{peer: peerSQL, op: func(ctx context.Context, i int) error {
			id := pointID(i)
			rows, err := p.sqlDB.QueryContext(ctx, selectByID, id)
			if err != nil {
				return err
			}
			defer rows.Close()
			if !rows.Next() {
				return errors.Join(fmt.Errorf("row %d: %w", id, sql.ErrNoRows), rows.Err())
			}
			m, err := sqlRowMap(rows)
			if err != nil {
				return err
			}
			if err := rows.Close(); err != nil {
				return err
			}
			return checkMapID(m, id)
		}},
		{peer: peerSqlx, op: func(ctx context.Context, i int) error {
			id := pointID(i)
			m := map[string]any{}
			if err := p.sqlxDB.QueryRowxContext(ctx, selectByID, id).MapScan(m); err != nil {
				return err
			}
			return checkMapID(m, id)
		}},
		{peer: peerGorm, op: gormMap(p.gorm)},
		{peer: peerGormP, op: gormMap(p.gormP)},
		{peer: peerBun, op: func(ctx context.Context, i int) error {
			id := pointID(i)
			var m map[string]any
			if err := p.bun.NewSelect().Table("items").Where("id = ?", id).Scan(ctx, &m); err != nil {
				return err
			}
			return checkMapID(m, id)
		}},
		{peer: peerPiccoloE, op: func(ctx context.Context, i int) error {
			id := pointID(i)
			rows, err := p.engine.RunQuerystring(ctx, piccolo.Querystring{SQL: selectByID, Args: []any{id}})
			if err != nil {
				return err
			}
			if len(rows) != 1 {
				return checkCount("point read", int64(len(rows)), 1)
			}
			return checkMapID(rows[0], id)
		}},
	}.withWorkload(wlPointMap)
}

func read100(p *peers) []benchCase {
	pgxRead := func(r pgxRunner) func(context.Context, int) error {
		return func(ctx context.Context, _ int) error {
			rows, err := r.Query(ctx, select100)
			if err != nil {
				return err
			}
			out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Item, error) {
				var it Item
				err := scanItem(row, &it)
				return it, err
			})
			if err != nil {
				return err
			}
			return checkCount("read 100", int64(len(out)), 100)
		}
	}
	gormRead := func(g *gorm.DB) func(context.Context, int) error {
		return func(ctx context.Context, _ int) error {
			var out []Item
			if err := g.WithContext(ctx).Order("id").Limit(100).Find(&out).Error; err != nil {
				return err
			}
			return checkCount("read 100", int64(len(out)), 100)
		}
	}
	return caseList{
		{peer: peerPgxConn, op: pgxRead(p.conn)},
		{peer: peerPgxPool, baseline: true, op: pgxRead(p.pool)},
		{peer: peerSQL, op: func(ctx context.Context, _ int) error {
			rows, err := p.sqlDB.QueryContext(ctx, select100)
			if err != nil {
				return err
			}
			defer rows.Close()
			var out []Item
			for rows.Next() {
				var it Item
				if err := scanItem(rows, &it); err != nil {
					return err
				}
				out = append(out, it)
			}
			if err := rows.Err(); err != nil {
				return err
			}
			return checkCount("read 100", int64(len(out)), 100)
		}},
		{peer: peerSqlx, op: func(ctx context.Context, _ int) error {
			var out []Item
			if err := p.sqlxDB.SelectContext(ctx, &out, select100); err != nil {
				return err
			}
			return checkCount("read 100", int64(len(out)), 100)
		}},
		{peer: peerGorm, op: gormRead(p.gorm)},
		{peer: peerGormP, op: gormRead(p.gormP)},
		{peer: peerBun, op: func(ctx context.Context, _ int) error {
			var out []bunItem
			if err := p.bun.NewSelect().Model(&out).Order("id").Limit(100).Scan(ctx); err != nil {
				return err
			}
			return checkCount("read 100", int64(len(out)), 100)
		}},
		{peer: peerPiccoloQ, op: func(ctx context.Context, _ int) error {
			out, err := items.Select().OrderBy(itemID.Asc()).Limit(100).All(ctx, p.engine)
			if err != nil {
				return err
			}
			return checkCount("read 100", int64(len(out)), 100)
		}},
		{peer: peerPiccoloE, op: func(ctx context.Context, _ int) error {
			var out []Item
			err := p.engine.QueryFunc(ctx, piccolo.Querystring{SQL: select100}, func(r pgx.Rows) error {
				var it Item
				err := scanItem(r, &it)
				out = append(out, it)
				return err
			})
			if err != nil {
				return err
			}
			return checkCount("read 100", int64(len(out)), 100)
		}},
	}.withWorkload(wlRead100)
}
