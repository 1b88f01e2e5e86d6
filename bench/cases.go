package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
	cases = append(cases, joined100Cases(p)...)
	cases = append(cases, insertOne(p)...)
	cases = append(cases, updateOne(p)...)
	for _, n := range []int{100, 1000, 10000} {
		cases = append(cases, bulkInsert(p, n)...)
	}
	cases = append(cases, tx10(p)...)
	cases = append(cases, txSavepoint(p)...)
	cases = append(cases, atomic100(p)...)
	cases = append(cases, atomicTyped100(p)...)
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

// caseList lets a workload's cases be named in one place.
type caseList []benchCase

func (l caseList) withWorkload(name string) caseList {
	for i := range l {
		l[i].workload = name
	}
	return l
}

// inserting records how many rows each op of the cases inserts.
func (l caseList) inserting(n int) caseList {
	for i := range l {
		l[i].inserts = n
	}
	return l
}

// checkNewID fails unless an insert returned an id past the seeded rows.
func checkNewID(id int64) error {
	if id <= seedRows {
		return fmt.Errorf("insert returned id %d", id)
	}
	return nil
}

// checkResult fails unless res reports want rows affected.
func checkResult(what string, res sql.Result, want int64) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	return checkCount(what, n, want)
}
