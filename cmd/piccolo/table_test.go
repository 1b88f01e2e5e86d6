package main

import (
	"bytes"
	"math/big"
	"net/netip"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

func TestWriteTable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		table resultTable
		want  string
	}{
		{
			name:  "no rows, no columns",
			table: resultTable{},
			want:  "(0 rows)\n",
		},
		{
			name:  "header only",
			table: resultTable{columns: []resultColumn{{name: "id", numeric: true}, {name: "name"}}},
			want: "" +
				" id | name\n" +
				"----+------\n" +
				"(0 rows)\n",
		},
		{
			name: "numbers right, text left, header centred",
			table: resultTable{
				columns: []resultColumn{{name: "id", numeric: true}, {name: "band"}, {name: "popularity", numeric: true}},
				rows: [][]string{
					{"1", "Pythonistas", "1000"},
					{"12", "C-Sharps", "10"},
				},
			},
			want: "" +
				" id |    band     | popularity\n" +
				"----+-------------+------------\n" +
				"  1 | Pythonistas |       1000\n" +
				" 12 | C-Sharps    |         10\n" +
				"(2 rows)\n",
		},
		{
			name: "one row",
			table: resultTable{
				columns: []resultColumn{{name: "x"}},
				rows:    [][]string{{"a"}},
			},
			want: " x\n---\n a\n(1 row)\n",
		},
		{
			name: "wide characters count by display width",
			table: resultTable{
				columns: []resultColumn{{name: "name"}, {name: "n", numeric: true}},
				rows:    [][]string{{"日本", "1"}, {"ab", "22"}},
			},
			want: "" +
				" name | n\n" +
				"------+----\n" +
				" 日本 |  1\n" +
				" ab   | 22\n" +
				"(2 rows)\n",
		},
		{
			name: "control characters stay on one line",
			table: resultTable{
				columns: []resultColumn{{name: "text"}},
				rows:    [][]string{{"a\nb\tc"}},
			},
			want: "  text\n---------\n a\\nb\\tc\n(1 row)\n",
		},
		{
			name: "short row padded",
			table: resultTable{
				columns: []resultColumn{{name: "a"}, {name: "b"}},
				rows:    [][]string{{"x"}},
			},
			want: " a | b\n---+---\n x |\n(1 row)\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			writeTable(&b, &tt.table, style{})
			if got := b.String(); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestFormatValue(t *testing.T) {
	t.Parallel()
	when := time.Date(2025, 6, 1, 19, 30, 0, 0, time.UTC)
	tests := []struct {
		name  string
		value any
		oid   uint32
		want  string
	}{
		{"null", nil, pgtype.TextOID, "NULL"},
		{"text", "Guido", pgtype.TextOID, "Guido"},
		{"integer", int32(42), pgtype.Int4OID, "42"},
		{"boolean", true, pgtype.BoolOID, "true"},
		{"bytea", []byte{0xde, 0xad}, pgtype.ByteaOID, `\xdead`},
		{"date", when, pgtype.DateOID, "2025-06-01"},
		{"timestamp", when, pgtype.TimestampOID, "2025-06-01 19:30:00"},
		{"timestamptz", when, pgtype.TimestamptzOID, "2025-06-01 19:30:00Z"},
		{"uuid", [16]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8}, pgtype.UUIDOID, "12345678-9abc-def0-0102-030405060708"},
		{"numeric", pgtype.Numeric{Int: big.NewInt(2550), Exp: -2, Valid: true}, pgtype.NumericOID, "25.50"},
		{"interval", pgtype.Interval{Microseconds: 4 * 3600 * 1e6, Valid: true}, pgtype.IntervalOID, "04:00:00"},
		{"null numeric", pgtype.Numeric{}, pgtype.NumericOID, "NULL"},
		{"array", []any{int32(1), nil, "x"}, pgtype.Int4ArrayOID, "{1,NULL,x}"},
		{"json", map[string]any{"a": 1}, pgtype.JSONBOID, `{"a":1}`},
		{"inet", netip.MustParsePrefix("10.0.0.0/8"), pgtype.InetOID, "10.0.0.0/8"},
	}
	for _, tt := range tests {
		if got := formatValue(tt.value, tt.oid); got != tt.want {
			t.Errorf("%s: formatValue(%#v) = %q, want %q", tt.name, tt.value, got, tt.want)
		}
	}
}

func TestThousands(t *testing.T) {
	t.Parallel()
	tests := map[int64]string{0: "0", 999: "999", 1000: "1,000", 1000000: "1,000,000", -1234: "-1,234", -123: "-123", 123456: "123,456"}
	for n, want := range tests {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
