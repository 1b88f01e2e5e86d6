package query_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/query"
)

// Hostile has identifiers that mean themselves only when quoted.
type Hostile struct {
	Select string  `piccolo:"select,pk"`
	Quote  string  `piccolo:"a\"b"`
	Semi   string  `piccolo:"x; DROP TABLE band; --"`
	Mixed  string  `piccolo:"MixedCase,index=Idx \"; --"`
	Uni    *string `piccolo:"楽団 🎸"`
}

// hostileValues are stored verbatim: they are bound parameters, never SQL.
var hostileValues = []string{
	`'; DROP TABLE band; --`,
	`"quoted" and 'single'`,
	`$1 $$ $tag$ \ \\ \'`,
	"new\nline\ttab",
	`/* comment */ -- comment`,
	"楽団 🎸 Ünïcödé",
	"",
	"SELECT",
}

func TestHostileIdentifiersAndValues(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	eng := newEngine(t)
	const schema = `My "Schema"; --`
	must(t, eng.RunDDL(ctx, `CREATE SCHEMA "My ""Schema""; --"`))
	t.Cleanup(func() { must(t, eng.RunDDL(context.Background(), `DROP SCHEMA "My ""Schema""; --" CASCADE`)) })
	tbl := query.MustTable[Hostile](`Order"; DROP TABLE x; --`, query.Schema(schema))
	hSelect := query.C(tbl, func(h *Hostile) *string { return &h.Select })
	hQuote := query.C(tbl, func(h *Hostile) *string { return &h.Quote })
	hMixed := query.C(tbl, func(h *Hostile) *string { return &h.Mixed })
	hUni := query.C(tbl, func(h *Hostile) **string { return &h.Uni })

	must(t, eng.Atomic().Add(tbl.Create()).Run(ctx))
	var cols []string
	must(t, eng.QueryFunc(ctx, piccolo.Querystring{
		SQL:  "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
		Args: []any{schema, tbl.Name()},
	}, func(rows pgx.Rows) error {
		var c string
		err := rows.Scan(&c)
		cols = append(cols, c)
		return err
	}))
	if !slices.Equal(cols, tbl.Columns()) {
		t.Fatalf("columns in the catalogue %q; want %q", cols, tbl.Columns())
	}

	rows := make([]*Hostile, len(hostileValues))
	for i, v := range hostileValues {
		rows[i] = &Hostile{Select: string(rune('a'+i)) + v, Quote: v, Semi: v, Mixed: v, Uni: &v}
	}
	rows = append(rows, &Hostile{Select: "null"})
	must(t, tbl.Insert(rows...).Run(ctx, eng))

	for _, want := range rows {
		got, err := tbl.Objects().Get(ctx, eng, hSelect.Eq(want.Select))
		if err != nil || !reflect.DeepEqual(got, *want) {
			t.Errorf("row %q: got %+v, %v; want %+v", want.Select, got, err, *want)
		}
	}
	for _, v := range hostileValues {
		n, err := tbl.Count().Where(hQuote.Eq(v), hMixed.Eq(v), hUni.Eq(&v)).Run(ctx, eng)
		if n != 1 || err != nil {
			t.Errorf("Count where = %q: %d, %v; want 1", v, n, err)
		}
	}
	if n, err := tbl.Count().Where(hUni.IsNull()).Run(ctx, eng); n != 1 || err != nil {
		t.Errorf("Count where NULL: %d, %v", n, err)
	}
	n, err := tbl.Update(hQuote.Set(`it's "done"`)).Where(hMixed.Like(`%DROP%`)).Run(ctx, eng)
	if n != 1 || err != nil {
		t.Errorf("Update = %d, %v; want 1", n, err)
	}
	total := 0
	for batch, err := range tbl.Select(hSelect).Batch(ctx, eng, piccolo.BatchSize(3)) {
		if err != nil {
			t.Fatal(err)
		}
		total += len(batch)
	}
	if total != len(rows) {
		t.Errorf("Batch saw %d rows; want %d", total, len(rows))
	}
	if n, err := tbl.Delete().Where(hSelect.Ne("null")).Run(ctx, eng); n != int64(len(hostileValues)) || err != nil {
		t.Errorf("Delete = %d, %v", n, err)
	}
	must(t, eng.Atomic().Add(tbl.DropTable()).Run(ctx))
	if ok, err := tbl.Exists().Run(ctx, eng); err == nil || ok {
		t.Errorf("Exists on the dropped table = %v, %v; want an error", ok, err)
	}
}

// uuid stands for a third-party UUID type.
type uuid [16]byte

// Everything has a column of every supported kind of Go type.
type Everything struct {
	ID      int64           `piccolo:"id,pk"`
	Small   int16           `piccolo:"small"`
	Medium  int32           `piccolo:"medium"`
	Large   int             `piccolo:"large"`
	Real    float32         `piccolo:"real"`
	Double  float64         `piccolo:"double"`
	Flag    bool            `piccolo:"flag"`
	Text    string          `piccolo:"text"`
	Short   string          `piccolo:"short,length=20"`
	At      time.Time       `piccolo:"at"`
	Blob    []byte          `piccolo:"blob"`
	UUID    uuid            `piccolo:"uuid"`
	PgUUID  pgtype.UUID     `piccolo:"pg_uuid"`
	Doc     json.RawMessage `piccolo:"doc"`
	Meta    map[string]any  `piccolo:"meta"`
	Price   pgtype.Numeric  `piccolo:"price,type=numeric(12,4)"`
	Tags    []string        `piccolo:"tags"`
	Scores  []int64         `piccolo:"scores"`
	Nick    *string         `piccolo:"nick"`
	Born    *time.Time      `piccolo:"born"`
	NullStr sql.NullString  `piccolo:"null_str"`
	NullInt sql.Null[int32] `piccolo:"null_int"`
	PgText  pgtype.Text     `piccolo:"pg_text"`
}

func TestTypesRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	eng := newEngine(t)
	tbl := query.MustTable[Everything]("everything")
	id := query.C(tbl, func(e *Everything) *int64 { return &e.ID })
	must(t, eng.Atomic().Add(tbl.Create()).Run(ctx))

	nick := "nick"
	born := time.Date(1991, 2, 20, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		row  Everything
	}{
		{"values", Everything{
			Small: -32768, Medium: 2147483647, Large: -1 << 62, Real: 1.5, Double: -2.25e300, Flag: true,
			Text: "text ✓", Short: "short", At: time.Date(2025, 6, 1, 19, 0, 0, 123456000, time.UTC),
			Blob: []byte{0, 1, 2, 255}, UUID: uuid{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
			PgUUID: pgtype.UUID{Bytes: [16]byte{15: 0xff}, Valid: true}, Doc: json.RawMessage(`{"a": [1, "b"]}`),
			Meta: map[string]any{"k": "v", "n": 1.5}, Price: numeric(t, "12345678.1234"),
			Tags: []string{"a", "b,c", `"d"`}, Scores: []int64{1, -2, 3}, Nick: &nick, Born: &born,
			NullStr: sql.NullString{String: "s", Valid: true}, NullInt: sql.Null[int32]{V: 7, Valid: true},
			PgText: pgtype.Text{String: "pg", Valid: true},
		}},
		{"zero and NULL", Everything{At: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"empty", Everything{At: time.Unix(0, 0), Blob: []byte{}, Tags: []string{}, Scores: []int64{}, Meta: map[string]any{}, Doc: json.RawMessage(`null`), Nick: new(string)}},
	}
	for _, tt := range tests {
		row := tt.row
		must(t, tbl.Insert(&row).Run(ctx, eng))
		got, err := tbl.Objects().Get(ctx, eng, id.Eq(row.ID))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		// Times come back in the local zone; compare instants.
		if !got.At.Equal(row.At) || (got.Born == nil) != (row.Born == nil) || (got.Born != nil && !got.Born.Equal(*row.Born)) {
			t.Errorf("%s: times %v, %v; want %v, %v", tt.name, got.At, got.Born, row.At, row.Born)
		}
		got.At, got.Born = row.At, row.Born
		// numeric(12,4) keeps 4 decimals: compare values, not digits.
		gp, _ := got.Price.Float64Value()
		wp, _ := row.Price.Float64Value()
		if gp != wp {
			t.Errorf("%s: price %v; want %v", tt.name, gp, wp)
		}
		got.Price = row.Price
		if !reflect.DeepEqual(got, row) {
			t.Errorf("%s:\n got %#v\nwant %#v", tt.name, got, row)
		}
	}
}

// TestDurationIsIntervalAndUint64NeedsAType pins two type rules on a real
// server: time.Duration is an interval column (pgx sends and reads it as
// one), kept to the microsecond; uint64 has no column type of its own and
// round-trips through numeric(20,0) (every value) or bigint (values that
// fit in int64) given with type=.
func TestDurationIsIntervalAndUint64NeedsAType(t *testing.T) {
	t.Parallel()
	type timing struct {
		ID      int64         `piccolo:"id,pk"`
		Took    time.Duration `piccolo:"took"`
		Limit   *time.Duration
		Counter uint64 `piccolo:",type=numeric(20,0)"`
		Small   uint64 `piccolo:",type=bigint"`
	}
	type bare struct {
		Counter uint64
	}
	_, err := query.NewTable[bare]("bare")
	if err == nil || !strings.Contains(err.Error(), "type=numeric(20,0)") || !strings.Contains(err.Error(), "type=bigint") {
		t.Errorf("uint64 without type=: %v; want a hint naming numeric(20,0) and bigint", err)
	}
	ctx := context.Background()
	eng := newEngine(t)
	tbl := query.MustTable[timing]("timing")
	took := query.C(tbl, func(r *timing) *time.Duration { return &r.Took })
	must(t, query.Exec(ctx, eng, tbl.Create()))
	got, err := eng.RunQuerystring(ctx, piccolo.Querystring{SQL: `SELECT data_type FROM information_schema.columns WHERE table_name = 'timing' AND column_name IN ('took', 'limit') ORDER BY column_name`})
	must(t, err)
	if len(got) != 2 || got[0]["data_type"] != "interval" || got[1]["data_type"] != "interval" {
		t.Errorf("time.Duration columns are %v; want interval", got)
	}
	limit := 90 * time.Minute
	row := timing{Took: 36*time.Hour + 1500*time.Microsecond + 7, Limit: &limit, Counter: math.MaxUint64, Small: math.MaxInt64}
	must(t, tbl.Insert(&row).Run(ctx, eng))
	back, err := tbl.Objects().Get(ctx, eng, took.Gt(36*time.Hour))
	must(t, err)
	want := row
	want.Took = row.Took.Truncate(time.Microsecond)
	if !reflect.DeepEqual(back, want) {
		t.Errorf("read back %+v (limit %v); want %+v (limit %v)", back, *back.Limit, want, *want.Limit)
	}
	n, err := eng.RunQuerystring(ctx, piccolo.Querystring{SQL: `SELECT took = interval '36 hours 1.5 ms' AS same FROM timing`})
	must(t, err)
	if n[0]["same"] != true {
		t.Errorf("the server holds %v; want the interval 36 hours 1.5 ms", n)
	}
}
