package piccolo

import (
	"context"
	"fmt"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// mapTypesSQL selects a value of every type rowPlan decodes itself, and of
// others it leaves to the codec (numeric, an array, jsonb, an interval) or
// to pgx's handling of unknown types (an enum), with NULLs and infinities,
// over more rows than a backing array of valueArena holds, with strings
// short and long.
const mapTypesSQL = `SELECT g AS id, 'name ' || g AS name, repeat('x', g) AS long, g::int2 AS i2, g::int4 AS i4, g::int8 AS i8,
	g / 3.0::float4 AS f4, g / 7.0::float8 AS f8, g % 2 = 0 AS b,
	CASE WHEN g = 2 THEN 'infinity'::timestamptz ELSE timestamptz '2025-01-02 03:04:05.678+01' + g * interval '1 hour' END AS tstz,
	CASE WHEN g = 3 THEN '-infinity'::timestamp ELSE timestamp '2025-01-02 03:04:05' + g * interval '1 day' END AS ts,
	CASE WHEN g = 4 THEN 'infinity'::date ELSE date '2025-01-02' + g END AS d,
	md5(g::text)::uuid AS u, (g * 1.25)::numeric AS n, ARRAY[g, g + 1] AS arr,
	jsonb_build_object('g', g) AS j, g * interval '1 minute' AS iv, 'b'::piccolo_map_mood AS mood,
	NULLIF(g % 3, 0)::int8 AS maybe, NULL::text AS nothing, g AS id
	FROM generate_series(1, 600) g`

// Rows as maps are exactly pgx.RowToMap's: the same keys, values of the
// same Go types and values, in the binary format of prepared statements
// and the text format of the simple protocol, for every row of a result.
func TestRowMapsLikeRowToMap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := connect(t)
	if _, err := conn.Exec(ctx, "DROP TYPE IF EXISTS piccolo_map_mood; CREATE TYPE piccolo_map_mood AS ENUM ('a', 'b')"); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			rows, err := conn.Query(ctx, mapTypesSQL, mode)
			if err != nil {
				t.Fatal(err)
			}
			want, err := pgx.CollectRows(rows, pgx.RowToMap)
			if err != nil {
				t.Fatal(err)
			}
			got := &mapRows{}
			rows, err = conn.Query(ctx, mapTypesSQL, mode)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := readRows(rows, got.scan); err != nil {
				t.Fatal(err)
			}
			if len(got.out) != len(want) {
				t.Fatalf("%d rows, want %d", len(got.out), len(want))
			}
			for i := range want {
				if !reflect.DeepEqual(got.out[i], want[i]) {
					t.Errorf("row %d:\n got %s\nwant %s", i, typed(got.out[i]), typed(want[i]))
				}
			}
		})
	}
}

// typed prints a row with the Go type of each value.
func typed(row map[string]any) string {
	s := ""
	for k, v := range row {
		s += fmt.Sprintf("%s=%T(%v) ", k, v, v)
	}
	return s
}

// BenchmarkRowMaps reads 1,000 rows of five columns (the bench module's
// stream) each way: pgx's typed Scan, pgx.RowToMap, and the engine's maps.
func BenchmarkRowMaps(b *testing.B) {
	ctx := context.Background()
	conn := connect(b)
	const q = `SELECT g::int8 AS id, 'item ' || g AS name, (g % 100)::int4 AS qty, g * 1.5::float8 AS price, now() AS created_at FROM generate_series(1, 1000) g`
	read := func(b *testing.B, scan func(pgx.Rows) error) {
		b.ReportAllocs()
		var before, after syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
		for b.Loop() {
			rows, err := conn.Query(ctx, q)
			if err != nil {
				b.Fatal(err)
			}
			if _, n, err := readRows(rows, scan); err != nil || n != 1000 {
				b.Fatal(n, err)
			}
		}
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		cpu := after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano()
		b.ReportMetric(float64(cpu)/float64(b.N), "client-cpu-ns/op")
	}
	b.Run("pgx typed Scan", func(b *testing.B) {
		var (
			id      int64
			name    string
			qty     int32
			price   float64
			created time.Time
		)
		read(b, func(r pgx.Rows) error { return r.Scan(&id, &name, &qty, &price, &created) })
	})
	b.Run("pgx RowToMap", func(b *testing.B) {
		out := make([]map[string]any, 0, 1000)
		read(b, func(r pgx.Rows) error {
			if len(out) == 1000 {
				out = make([]map[string]any, 0, 1000)
			}
			m, err := pgx.RowToMap(r)
			out = append(out, m)
			return err
		})
	})
	b.Run("engine maps", func(b *testing.B) {
		m := &mapRows{out: make([]map[string]any, 0, 1000)}
		read(b, func(r pgx.Rows) error {
			if len(m.out) == 1000 {
				m.out = make([]map[string]any, 0, 1000)
			}
			return m.scan(r)
		})
	})
	// The floor of any API that returns a map per row: the same 1,000 maps
	// built from values at hand, with no database and no decoding.
	b.Run("maps alone", func(b *testing.B) {
		b.ReportAllocs()
		names := make([]string, 1000)
		for i := range names {
			names[i] = fmt.Sprintf("item %d", i+1)
		}
		created := time.Now()
		var out []map[string]any
		for b.Loop() {
			out = make([]map[string]any, 0, 1000)
			for i := range 1000 {
				out = append(out, map[string]any{"id": int64(i + 1), "name": names[i], "qty": int32(i % 100),
					"price": float64(i) * 1.5, "created_at": created})
			}
		}
		if len(out) != 1000 {
			b.Fatal(len(out))
		}
	})
}
