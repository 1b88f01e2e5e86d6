package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
	"github.com/uptrace/bun"
	"gorm.io/gorm"
)

// benchCase is one library doing one workload.
type benchCase struct {
	workload string
	peer     string
	baseline bool // the denominator of the workload's ratios
	parallel bool // op runs from 2 x GOMAXPROCS goroutines
	inserts  int  // rows each op leaves in items, counted after the case
	op       func(ctx context.Context, i int) error
}

// The peers' names.
const (
	peerPgxConn   = "pgx (conn)"
	peerPgxPool   = "pgx (pool)"
	peerSQL       = "database/sql"
	peerSqlx      = "sqlx"
	peerGorm      = "GORM"
	peerGormP     = "GORM (PrepareStmt)"
	peerBun       = "Bun"
	peerPiccoloQ  = "piccolo-go (query)"
	peerPiccoloE  = "piccolo-go (engine)"
	peerPiccoloAt = "piccolo-go Atomic"
)

// pgxRunner is what *pgx.Conn and *pgxpool.Pool have in common.
type pgxRunner interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	CopyFrom(ctx context.Context, table pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error)
	Begin(ctx context.Context) (pgx.Tx, error)
}

// allCases returns every non-streaming case, grouped by workload in the
// order the report shows them.
func allCases(p *peers) []benchCase {
	var cases []benchCase
	point := pointReads(p)
	cases = append(cases, point...)
	cases = append(cases, pointReadMaps(p)...)
	cases = append(cases, read100(p)...)
	cases = append(cases, insertOne(p)...)
	cases = append(cases, updateOne(p)...)
	for _, n := range []int{100, 1000, 10000} {
		cases = append(cases, bulkInsert(p, n)...)
	}
	cases = append(cases, tx10(p)...)
	cases = append(cases, txSavepoint(p)...)
	cases = append(cases, atomic100(p)...)
	for _, c := range point {
		if c.peer == peerPgxConn {
			continue // a pgx.Conn is not safe for concurrent use
		}
		c.workload, c.parallel = wlParallel, true
		cases = append(cases, c)
	}
	return cases
}

// The workloads' names.
const (
	wlPointTyped = "point read (typed)"
	wlPointMap   = "point read (map)"
	wlRead100    = "read 100 rows"
	wlInsert     = "insert RETURNING id"
	wlUpdate     = "update one row"
	wlBulk       = "bulk insert %d rows"
	wlTx10       = "tx of 10 inserts"
	wlTxSP       = "tx with savepoint rolled back"
	wlAtomic     = "Atomic of 100 inserts"
	wlParallel   = "parallel point reads"
)

// pointID spreads reads and updates over the seeded rows.
func pointID(i int) int64 { return int64(i%seedRows) + 1 }

// newItem is the row op i inserts.
func newItem(i int) Item {
	return Item{Name: "new " + strconv.Itoa(i), Qty: int32(i % 1000), Price: 9.5, CreatedAt: benchTime}
}

// benchTime is the created_at of inserted rows.
var benchTime = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func newBunItem(i int) bunItem {
	it := newItem(i)
	return bunItem{Name: it.Name, Qty: it.Qty, Price: it.Price, CreatedAt: it.CreatedAt}
}

func itemArgs(it *Item) []any { return []any{it.Name, it.Qty, it.Price, it.CreatedAt} }

// checkItem fails unless it is row id.
func checkItem(it *Item, id int64) error {
	if it.ID != id || it.Name == "" {
		return fmt.Errorf("read row %d, got %+v", id, *it)
	}
	return nil
}

// checkCount fails unless got is want.
func checkCount(what string, got, want int64) error {
	if got != want {
		return fmt.Errorf("%s: %d rows, want %d", what, got, want)
	}
	return nil
}

// checkMapID fails unless the map is row id.
func checkMapID(m map[string]any, id int64) error {
	if got, ok := m["id"].(int64); !ok || got != id {
		return fmt.Errorf("read row %d, got %v", id, m)
	}
	return nil
}

// errRollback is returned by nested blocks to roll their savepoint back.
var errRollback = errors.New("roll the savepoint back")

func scanItem(row interface{ Scan(...any) error }, it *Item) error {
	return row.Scan(&it.ID, &it.Name, &it.Qty, &it.Price, &it.CreatedAt)
}

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

// caseList lets a workload's cases be named in one place.
type caseList []benchCase

func (l caseList) withWorkload(name string) caseList {
	for i := range l {
		l[i].workload = name
	}
	return l
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

// checkNewID fails unless an insert returned an id past the seeded rows.
func checkNewID(id int64) error {
	if id <= seedRows {
		return fmt.Errorf("insert returned id %d", id)
	}
	return nil
}

func insertOne(p *peers) []benchCase {
	pgxInsert := func(r pgxRunner) func(context.Context, int) error {
		return func(ctx context.Context, i int) error {
			it := newItem(i)
			if err := r.QueryRow(ctx, insertItem, itemArgs(&it)...).Scan(&it.ID); err != nil {
				return err
			}
			return checkNewID(it.ID)
		}
	}
	gormInsert := func(g *gorm.DB) func(context.Context, int) error {
		return func(ctx context.Context, i int) error {
			it := newItem(i)
			if err := g.WithContext(ctx).Create(&it).Error; err != nil {
				return err
			}
			return checkNewID(it.ID)
		}
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
		{peer: peerBun, op: func(ctx context.Context, i int) error {
			it := newBunItem(i)
			if _, err := p.bun.NewInsert().Model(&it).Exec(ctx); err != nil {
				return err
			}
			return checkNewID(it.ID)
		}},
		{peer: peerPiccoloQ, op: func(ctx context.Context, i int) error {
			it := newItem(i)
			if err := items.Insert(&it).Run(ctx, p.engine); err != nil {
				return err
			}
			return checkNewID(it.ID)
		}},
		{peer: peerPiccoloE, op: func(ctx context.Context, i int) error {
			it := newItem(i)
			err := p.engine.QueryFunc(ctx, piccolo.Querystring{SQL: insertItem, Args: itemArgs(&it)},
				func(r pgx.Rows) error { return r.Scan(&it.ID) })
			if err != nil {
				return err
			}
			return checkNewID(it.ID)
		}},
	}.withWorkload(wlInsert).inserting(1)
}

// inserting records how many rows each op of the cases inserts.
func (l caseList) inserting(n int) caseList {
	for i := range l {
		l[i].inserts = n
	}
	return l
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

// checkResult fails unless res reports want rows affected.
func checkResult(what string, res sql.Result, want int64) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	return checkCount(what, n, want)
}

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

// The transaction workloads insert with RETURNING id everywhere: the ORMs
// always read the id back.

func pgxInsertTx(ctx context.Context, tx pgx.Tx, i int) error {
	it := newItem(i)
	if err := tx.QueryRow(ctx, insertItem, itemArgs(&it)...).Scan(&it.ID); err != nil {
		return err
	}
	return checkNewID(it.ID)
}

func sqlInsertTx(ctx context.Context, tx *sql.Tx, i int) error {
	it := newItem(i)
	if err := tx.QueryRowContext(ctx, insertItem, itemArgs(&it)...).Scan(&it.ID); err != nil {
		return err
	}
	return checkNewID(it.ID)
}

func gormInsertTx(tx *gorm.DB, i int) error {
	it := newItem(i)
	if err := tx.Create(&it).Error; err != nil {
		return err
	}
	return checkNewID(it.ID)
}

func bunInsertTx(ctx context.Context, tx bun.Tx, i int) error {
	it := newBunItem(i)
	if _, err := tx.NewInsert().Model(&it).Exec(ctx); err != nil {
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

// repeat runs fn n times, stopping at the first error.
func repeat(n int, fn func(j int) error) error {
	for j := range n {
		if err := fn(j); err != nil {
			return err
		}
	}
	return nil
}

func tx10(p *peers) []benchCase {
	pgxTx := func(r pgxRunner) func(context.Context, int) error {
		return func(ctx context.Context, i int) error {
			return pgx.BeginFunc(ctx, r, func(tx pgx.Tx) error {
				return repeat(10, func(j int) error { return pgxInsertTx(ctx, tx, i*10+j) })
			})
		}
	}
	sqlTx := func(ctx context.Context, db *sql.DB, i int) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck // after Commit it only reports ErrTxDone
		if err := repeat(10, func(j int) error { return sqlInsertTx(ctx, tx, i*10+j) }); err != nil {
			return err
		}
		return tx.Commit()
	}
	gormTx := func(g *gorm.DB) func(context.Context, int) error {
		return func(ctx context.Context, i int) error {
			return g.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
				return repeat(10, func(j int) error { return gormInsertTx(tx, i*10+j) })
			})
		}
	}
	return caseList{
		{peer: peerPgxConn, op: pgxTx(p.conn)},
		{peer: peerPgxPool, baseline: true, op: pgxTx(p.pool)},
		{peer: peerSQL, op: func(ctx context.Context, i int) error { return sqlTx(ctx, p.sqlDB, i) }},
		{peer: peerSqlx, op: func(ctx context.Context, i int) error { return sqlTx(ctx, p.sqlxDB.DB, i) }},
		{peer: peerGorm, op: gormTx(p.gorm)},
		{peer: peerGormP, op: gormTx(p.gormP)},
		{peer: peerBun, op: func(ctx context.Context, i int) error {
			return p.bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				return repeat(10, func(j int) error { return bunInsertTx(ctx, tx, i*10+j) })
			})
		}},
		{peer: peerPiccoloQ, op: func(ctx context.Context, i int) error {
			return p.engine.Transaction(ctx, func(ctx context.Context) error {
				return repeat(10, func(j int) error { return piccoloInsertQ(ctx, p, i*10+j) })
			})
		}},
		{peer: peerPiccoloE, op: func(ctx context.Context, i int) error {
			return p.engine.Transaction(ctx, func(ctx context.Context) error {
				return repeat(10, func(j int) error { return piccoloInsertE(ctx, p, i*10+j) })
			})
		}},
	}.withWorkload(wlTx10).inserting(10)
}

// txSavepoint: insert, a nested block that inserts and rolls back to its
// savepoint, insert, commit. Two rows stay.
func txSavepoint(p *peers) []benchCase {
	pgxTx := func(r pgxRunner) func(context.Context, int) error {
		return func(ctx context.Context, i int) error {
			return pgx.BeginFunc(ctx, r, func(tx pgx.Tx) error {
				if err := pgxInsertTx(ctx, tx, i); err != nil {
					return err
				}
				err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error { // a savepoint
					if err := pgxInsertTx(ctx, sp, i); err != nil {
						return err
					}
					return errRollback
				})
				if !errors.Is(err, errRollback) {
					return fmt.Errorf("nested block: %w", err)
				}
				return pgxInsertTx(ctx, tx, i)
			})
		}
	}
	sqlTx := func(ctx context.Context, db *sql.DB, i int) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck // after Commit it only reports ErrTxDone
		steps := []func() error{
			func() error { return sqlInsertTx(ctx, tx, i) },
			func() error { _, err := tx.ExecContext(ctx, "SAVEPOINT sp"); return err },
			func() error { return sqlInsertTx(ctx, tx, i) },
			func() error { _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT sp"); return err },
			func() error { return sqlInsertTx(ctx, tx, i) },
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
		return tx.Commit()
	}
	gormTx := func(g *gorm.DB) func(context.Context, int) error {
		return func(ctx context.Context, i int) error {
			return g.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
				if err := gormInsertTx(tx, i); err != nil {
					return err
				}
				err := tx.Transaction(func(sp *gorm.DB) error { // a savepoint
					if err := gormInsertTx(sp, i); err != nil {
						return err
					}
					return errRollback
				})
				if !errors.Is(err, errRollback) {
					return fmt.Errorf("nested block: %w", err)
				}
				return gormInsertTx(tx, i)
			})
		}
	}
	piccoloTx := func(insert func(context.Context, *peers, int) error) func(context.Context, int) error {
		return func(ctx context.Context, i int) error {
			return p.engine.Transaction(ctx, func(ctx context.Context) error {
				if err := insert(ctx, p, i); err != nil {
					return err
				}
				err := p.engine.Transaction(ctx, func(ctx context.Context) error {
					if err := insert(ctx, p, i); err != nil {
						return err
					}
					return errRollback
				}, piccolo.Nesting(piccolo.NestSavepoint))
				if !errors.Is(err, errRollback) {
					return fmt.Errorf("nested block: %w", err)
				}
				return insert(ctx, p, i)
			})
		}
	}
	return caseList{
		{peer: peerPgxConn, op: pgxTx(p.conn)},
		{peer: peerPgxPool, baseline: true, op: pgxTx(p.pool)},
		{peer: peerSQL, op: func(ctx context.Context, i int) error { return sqlTx(ctx, p.sqlDB, i) }},
		{peer: peerSqlx, op: func(ctx context.Context, i int) error { return sqlTx(ctx, p.sqlxDB.DB, i) }},
		{peer: peerGorm, op: gormTx(p.gorm)},
		{peer: peerGormP, op: gormTx(p.gormP)},
		{peer: peerBun, op: func(ctx context.Context, i int) error {
			return p.bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				if err := bunInsertTx(ctx, tx, i); err != nil {
					return err
				}
				err := tx.RunInTx(ctx, nil, func(ctx context.Context, sp bun.Tx) error { // a savepoint
					if err := bunInsertTx(ctx, sp, i); err != nil {
						return err
					}
					return errRollback
				})
				if !errors.Is(err, errRollback) {
					return fmt.Errorf("nested block: %w", err)
				}
				return bunInsertTx(ctx, tx, i)
			})
		}},
		{peer: peerPiccoloQ, op: piccoloTx(piccoloInsertQ)},
		{peer: peerPiccoloE, op: piccoloTx(piccoloInsertE)},
	}.withWorkload(wlTxSP).inserting(2)
}

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
	return caseList{
		{peer: "pgx pipeline (pool.Begin, SendBatch, Commit)", baseline: true, op: func(ctx context.Context, _ int) error {
			return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
				b := &pgx.Batch{}
				queue(b)
				return checkBatch(tx.SendBatch(ctx, b))
			})
		}},
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
		{peer: "pgconn pipeline, unnamed statements (Atomic's method)", op: func(ctx context.Context, _ int) error {
			return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
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
			})
		}},
		{peer: "pgx one by one (pool tx)", op: func(ctx context.Context, _ int) error {
			return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
				return repeat(n, func(j int) error {
					tag, err := tx.Exec(ctx, insertPlain, itemArgs(&rows.rows[j])...)
					if err != nil {
						return err
					}
					return checkCount("insert", tag.RowsAffected(), 1)
				})
			})
		}},
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
		{peer: "piccolo-go one by one (Transaction, Exec)", op: func(ctx context.Context, _ int) error {
			return p.engine.Transaction(ctx, func(ctx context.Context) error {
				return repeat(n, func(j int) error {
					tag, err := p.engine.Exec(ctx, piccolo.Querystring{SQL: insertPlain, Args: itemArgs(&rows.rows[j])})
					if err != nil {
						return err
					}
					return checkCount("insert", tag.RowsAffected(), 1)
				})
			})
		}},
		{peer: peerSQL + " one by one", op: func(ctx context.Context, _ int) error {
			tx, err := p.sqlDB.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback() //nolint:errcheck // after Commit it only reports ErrTxDone
			err = repeat(n, func(j int) error {
				res, err := tx.ExecContext(ctx, insertPlain, itemArgs(&rows.rows[j])...)
				if err != nil {
					return err
				}
				return checkResult("insert", res, 1)
			})
			if err != nil {
				return err
			}
			return tx.Commit()
		}},
		{peer: peerGorm + " one by one", op: func(ctx context.Context, _ int) error {
			return p.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
				return repeat(n, func(j int) error { return gormInsertTx(tx, j) })
			})
		}},
		{peer: peerGormP + " one by one", op: func(ctx context.Context, _ int) error {
			return p.gormP.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
				return repeat(n, func(j int) error { return gormInsertTx(tx, j) })
			})
		}},
		{peer: peerBun + " one by one", op: func(ctx context.Context, _ int) error {
			return p.bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				return repeat(n, func(j int) error { return bunInsertTx(ctx, tx, j) })
			})
		}},
	}.withWorkload(wlAtomic).inserting(n)
}
