package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/piccolo-go/piccolo"
	"gorm.io/gorm"
)

// multiInsert renders one INSERT of n rows with $n placeholders, the way
// database/sql users batch (4 parameters a row stays under PostgreSQL's
// 65535 up to 16383 rows).
func multiInsert(n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO items (name, qty, price, created_at) VALUES ")
	for r := range n {
		if r > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "($%d, $%d, $%d, $%d)", 4*r+1, 4*r+2, 4*r+3, 4*r+4)
	}
	return b.String()
}

// bulkRows is the data of one bulk insert, in each library's shape. Ids
// written back by an insert are cleared before the next.
type bulkRows struct {
	rows []Item
	ptrs []*Item
	bun  []bunItem
}

func newBulkRows(n int) *bulkRows {
	b := &bulkRows{rows: make([]Item, n), ptrs: make([]*Item, n), bun: make([]bunItem, n)}
	for i := range n {
		b.rows[i] = newItem(i)
		b.ptrs[i] = &b.rows[i]
		b.bun[i] = newBunItem(i)
	}
	return b
}

// reset clears the ids an insert wrote back, so that the next insert sends
// DEFAULT again.
func (b *bulkRows) reset() {
	for i := range b.rows {
		b.rows[i].ID = 0
		b.bun[i].ID = 0
	}
}

func (b *bulkRows) args() []any {
	args := make([]any, 0, 4*len(b.rows))
	for i := range b.rows {
		args = append(args, itemArgs(&b.rows[i])...)
	}
	return args
}

func bulkInsert(p *peers, n int) []benchCase {
	data := newBulkRows(n)
	multi := multiInsert(n)
	want := int64(n)
	pgxCopy := func(r pgxRunner) func(context.Context, int) error {
		return func(ctx context.Context, _ int) error {
			got, err := r.CopyFrom(ctx, pgx.Identifier{"items"}, []string{"name", "qty", "price", "created_at"},
				pgx.CopyFromSlice(n, func(i int) ([]any, error) { return itemArgs(&data.rows[i]), nil }))
			if err != nil {
				return err
			}
			return checkCount("copy", got, want)
		}
	}
	gormInsert := func(g *gorm.DB) func(context.Context, int) error {
		return func(ctx context.Context, _ int) error {
			data.reset()
			res := g.WithContext(ctx).Create(&data.rows)
			if res.Error != nil {
				return res.Error
			}
			return checkCount("bulk insert", res.RowsAffected, want)
		}
	}
	return caseList{
		{peer: peerPgxConn + " COPY", op: pgxCopy(p.conn)},
		{peer: peerPgxPool + " COPY", baseline: true, op: pgxCopy(p.pool)},
		{peer: peerSQL, op: func(ctx context.Context, _ int) error {
			res, err := p.sqlDB.ExecContext(ctx, multi, data.args()...)
			if err != nil {
				return err
			}
			return checkResult("bulk insert", res, want)
		}},
		{peer: peerSqlx, op: func(ctx context.Context, _ int) error {
			res, err := p.sqlxDB.NamedExecContext(ctx,
				"INSERT INTO items (name, qty, price, created_at) VALUES (:name, :qty, :price, :created_at)", data.rows)
			if err != nil {
				return err
			}
			return checkResult("bulk insert", res, want)
		}},
		{peer: peerGorm, op: gormInsert(p.gorm)},
		{peer: peerGormP, op: gormInsert(p.gormP)},
		{peer: peerBun, op: func(ctx context.Context, _ int) error {
			data.reset()
			res, err := p.bun.NewInsert().Model(&data.bun).Exec(ctx)
			if err != nil {
				return err
			}
			return checkResult("bulk insert", res, want)
		}},
		{peer: peerPiccoloQ, op: func(ctx context.Context, _ int) error {
			data.reset()
			if err := items.Insert(data.ptrs...).Run(ctx, p.engine); err != nil {
				return err
			}
			return checkNewID(data.rows[n-1].ID)
		}},
		{peer: peerPiccoloQ + " COPY (no ids back)", op: func(ctx context.Context, _ int) error {
			// Returning() with no columns: nothing to write back, so from
			// 1,000 rows Insert loads with COPY.
			data.reset()
			if err := items.Insert(data.ptrs...).Returning().Run(ctx, p.engine); err != nil {
				return err
			}
			return nil
		}},
		{peer: peerPiccoloE, op: func(ctx context.Context, _ int) error {
			tag, err := p.engine.Exec(ctx, piccolo.Querystring{SQL: multi, Args: data.args()})
			if err != nil {
				return err
			}
			return checkCount("bulk insert", tag.RowsAffected(), want)
		}},
		{peer: peerPiccoloE + " COPY", op: func(ctx context.Context, _ int) error {
			got, err := p.engine.CopyFrom(ctx, pgx.Identifier{"items"}, []string{"name", "qty", "price", "created_at"},
				pgx.CopyFromSlice(n, func(i int) ([]any, error) { return itemArgs(&data.rows[i]), nil }))
			if err != nil {
				return err
			}
			return checkCount("copy", got, want)
		}},
	}.withWorkload(fmt.Sprintf(wlBulk, n)).inserting(n)
}
