package query

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
)

// fakeEngine records statements and answers QueryFunc with canned rows;
// it checks the query layer's plumbing without a database.
type fakeEngine struct {
	sent  []string
	txs   int
	rows  [][]any // the rows every QueryFunc returns
	tag   string
	inTx  bool
	txLog []bool // whether each statement ran inside Transaction
}

func (f *fakeEngine) Exec(_ context.Context, q piccolo.Querystring, _ ...piccolo.Option) (pgconn.CommandTag, error) {
	f.sent, f.txLog = append(f.sent, q.SQL), append(f.txLog, f.inTx)
	return pgconn.NewCommandTag(f.tag), nil
}

func (f *fakeEngine) QueryFunc(_ context.Context, q piccolo.Querystring, scan func(pgx.Rows) error, _ ...piccolo.Option) error {
	f.sent, f.txLog = append(f.sent, q.SQL), append(f.txLog, f.inTx)
	rows := &fakeRows{rows: f.rows, i: -1}
	for rows.Next() { // once per row, as PostgresEngine does
		if err := scan(rows); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeEngine) CopyFrom(context.Context, pgx.Identifier, []string, pgx.CopyFromSource, ...piccolo.Option) (int64, error) {
	return 0, errors.New("fakeEngine: no COPY")
}

func (f *fakeEngine) Batch(context.Context, piccolo.Query, ...piccolo.Option) (*piccolo.Batch, error) {
	return nil, errors.New("not faked")
}

func (f *fakeEngine) Transaction(ctx context.Context, fn func(context.Context) error, _ ...piccolo.TxOption) error {
	f.txs++
	f.inTx = true
	defer func() { f.inTx = false }()
	return fn(ctx)
}

// fakeRows is a pgx.Rows over values; Scan assigns them like pgx would
// for matching types.
type fakeRows struct {
	pgx.Rows
	rows [][]any
	i    int
}

func (r *fakeRows) Next() bool { r.i++; return r.i < len(r.rows) }

func (r *fakeRows) Scan(dest ...any) error {
	row := r.rows[r.i]
	if len(dest) != len(row) {
		return errors.New("wrong number of destinations")
	}
	for i, d := range dest {
		reflect.ValueOf(d).Elem().Set(reflect.ValueOf(row[i]))
	}
	return nil
}

func TestSelectAllScansIntoFields(t *testing.T) {
	t.Parallel()
	m := int64(4)
	e := &fakeEngine{rows: [][]any{
		{int64(1), "Pythonistas", &m, int32(1000), 4.5},
		{int64(2), "Rustaceans", (*int64)(nil), int32(500), 3.0},
	}}
	got, err := bands.Select().All(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	want := []band{{1, "Pythonistas", &m, 1000, 4.5}, {2, "Rustaceans", nil, 500, 3}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v; want %+v", got, want)
	}

	e.rows = [][]any{{"only the name"}}
	first, err := bands.Select(bName).First(context.Background(), e)
	if err != nil || first != (band{Name: "only the name"}) {
		t.Errorf("First = %+v, %v", first, err)
	}
	if e.sent[1] != `SELECT "name" FROM "band" LIMIT $1` {
		t.Errorf("First sent %s", e.sent[1])
	}

	e.rows = nil
	if _, err := bands.Select().First(context.Background(), e); !errors.Is(err, sql.ErrNoRows) {
		t.Errorf("First with no rows: %v; want sql.ErrNoRows", err)
	}
}

func TestInsertRunWritesBackIDs(t *testing.T) {
	t.Parallel()
	e := &fakeEngine{rows: [][]any{{int64(10)}, {int64(11)}}}
	a, b := &manager{Name: "a"}, &manager{Name: "b"}
	if err := managers.Insert(a, b).Run(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	if a.ID != 10 || b.ID != 11 || e.txs != 0 {
		t.Errorf("ids %d, %d, %d transactions; want 10, 11, 0", a.ID, b.ID, e.txs)
	}

	e.rows = [][]any{{int64(1)}}
	err := managers.Insert(a, b).Run(context.Background(), e)
	if err == nil || !strings.Contains(err.Error(), "RETURNING gave 1 rows for the 2 sent") {
		t.Errorf("short RETURNING: %v", err)
	}
}

func TestInsertRunChunksInOneTransaction(t *testing.T) {
	t.Parallel()
	rows := make([]*manager, chunkParams/2+1) // two parameters a row: two chunks
	for i := range rows {
		rows[i] = &manager{ID: int64(i + 1)}
	}
	e := &fakeEngine{tag: "INSERT 0 1"}
	if err := managers.Insert(rows...).Returning().Run(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	if e.txs != 1 || len(e.sent) != 2 || !e.txLog[0] || !e.txLog[1] {
		t.Errorf("%d transactions, %d statements, in tx %v; want 1, 2, all", e.txs, len(e.sent), e.txLog)
	}
}

func TestRunCountExistsUpdateDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := &fakeEngine{rows: [][]any{{int64(42)}}}
	if n, err := bands.Count().Run(ctx, e); n != 42 || err != nil {
		t.Errorf("Count = %d, %v", n, err)
	}
	e.rows = [][]any{{true}}
	if ok, err := bands.Exists().Run(ctx, e); !ok || err != nil {
		t.Errorf("Exists = %v, %v", ok, err)
	}
	e.tag = "UPDATE 3"
	if n, err := bands.Update(bName.Set("x")).Where(bID.Gt(0)).Run(ctx, e); n != 3 || err != nil {
		t.Errorf("Update = %d, %v", n, err)
	}
	if _, err := bands.Delete().Run(ctx, e); !errors.Is(err, ErrNoWhere) {
		t.Errorf("Delete without Where: %v", err)
	}
	e.rows = [][]any{{int64(7), "gone"}}
	got, err := bands.Delete().Where(bID.Eq(7)).Returning(bID, bName).RunReturning(ctx, e)
	if err != nil || !reflect.DeepEqual(got, []band{{ID: 7, Name: "gone"}}) {
		t.Errorf("Delete RunReturning = %+v, %v", got, err)
	}
	if _, err := bands.Update(bName.Set("x")).All().RunReturning(ctx, e); err == nil {
		t.Error("RunReturning without Returning did not fail")
	}
}

func TestExecRunsStatementsInOrderInATransaction(t *testing.T) {
	t.Parallel()
	e := &fakeEngine{}
	if err := Exec(context.Background(), e, bands.Create()); err != nil {
		t.Fatal(err)
	}
	if e.txs != 1 || len(e.sent) != 2 || !strings.HasPrefix(e.sent[0], "CREATE TABLE") || !strings.HasPrefix(e.sent[1], "CREATE INDEX") {
		t.Errorf("%d transactions, sent %q", e.txs, e.sent)
	}
	if err := Exec(context.Background(), e, bands.DropTable()); err != nil || e.txs != 1 {
		t.Errorf("one statement: %v, %d transactions; want no new transaction", err, e.txs)
	}
	e.rows = [][]any{{int64(5)}}
	m := &manager{Name: "runner"}
	if err := Exec(context.Background(), e, managers.Insert(m)); err != nil || m.ID != 5 {
		t.Errorf("Exec of a Runner: %v, id %d", err, m.ID)
	}
}
