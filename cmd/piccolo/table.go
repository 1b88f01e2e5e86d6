package main

import (
	"context"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/piccolo-go/piccolo"
	"github.com/rivo/uniseg"
)

// resultTable is a query result ready to print: formatted cells in column order.
type resultTable struct {
	columns []resultColumn
	rows    [][]string
}

// resultColumn is a column's name and alignment.
type resultColumn struct {
	name    string
	numeric bool // right-aligned, as psql does for numbers
}

// queryTable runs q through the engine and collects its rows in column
// order (RunQuerystring's maps do not keep it). A result without rows has
// no columns: the engine does not report them.
func queryTable(ctx context.Context, eng piccolo.Engine, q piccolo.Querystring) (*resultTable, error) {
	t := &resultTable{}
	if err := eng.QueryFunc(ctx, q, t.scan); err != nil {
		return nil, err
	}
	return t, nil
}

// scan appends the current row of rows to t, taking t's columns from the
// first row. It is a scan function for QueryFunc and Batch.NextFunc.
func (t *resultTable) scan(rows pgx.Rows) error {
	fields := rows.FieldDescriptions()
	if t.columns == nil {
		t.columns = make([]resultColumn, len(fields))
		for i, f := range fields {
			t.columns[i] = resultColumn{name: f.Name, numeric: numericOID(f.DataTypeOID)}
		}
	}
	values, err := rows.Values()
	if err != nil {
		return err
	}
	row := make([]string, len(values))
	for i, v := range values {
		row[i] = formatValue(v, fields[i].DataTypeOID)
	}
	t.rows = append(t.rows, row)
	return nil
}

// numericOID reports whether a column of type oid holds numbers.
func numericOID(oid uint32) bool {
	switch oid {
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.Float4OID, pgtype.Float8OID,
		pgtype.NumericOID, pgtype.OIDOID:
		return true
	}
	return false
}

// formatValue writes a value as PostgreSQL would print it in text: v as
// decoded by pgx, oid the column's type.
func formatValue(v any, oid uint32) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case string:
		return v
	case []byte:
		return `\x` + hex.EncodeToString(v)
	case time.Time:
		switch oid {
		case pgtype.DateOID:
			return v.Format(time.DateOnly)
		case pgtype.TimestampOID:
			return v.Format("2006-01-02 15:04:05.999999")
		}
		return v.Format("2006-01-02 15:04:05.999999Z07:00")
	case [16]byte:
		return fmt.Sprintf("%x-%x-%x-%x-%x", v[0:4], v[4:6], v[6:8], v[8:10], v[10:16])
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = formatValue(e, 0)
		}
		return "{" + strings.Join(parts, ",") + "}"
	case map[string]any:
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	case driver.Valuer: // pgtype.Numeric, Interval, Time...: their text form
		dv, err := v.Value()
		if err != nil {
			return fmt.Sprint(v)
		}
		return formatValue(dv, oid)
	case fmt.Stringer:
		return v.String()
	}
	return fmt.Sprint(v)
}

// cellEscaper keeps each row on one line.
var cellEscaper = strings.NewReplacer("\n", `\n`, "\r", `\r`, "\t", `\t`)

// writeTable prints t aligned, as psql does, followed by its row count:
//
//	 id | name
//	----+-------
//	  1 | Guido
//	(1 row)
func writeTable(w io.Writer, t *resultTable, st style) {
	if len(t.columns) > 0 {
		widths := make([]int, len(t.columns))
		header := make([]string, len(t.columns))
		for i, c := range t.columns {
			header[i] = cellEscaper.Replace(c.name)
			widths[i] = uniseg.StringWidth(header[i])
		}
		cells := make([][]string, len(t.rows))
		for r, row := range t.rows {
			cells[r] = make([]string, len(t.columns))
			for i := range t.columns {
				if i < len(row) {
					cells[r][i] = cellEscaper.Replace(row[i])
				}
				widths[i] = max(widths[i], uniseg.StringWidth(cells[r][i]))
			}
		}
		fmt.Fprintln(w, st.bold(tableLine(header, widths, t.columns, true)))
		rule := make([]string, len(widths))
		for i, wd := range widths {
			rule[i] = strings.Repeat("-", wd+2)
		}
		fmt.Fprintln(w, strings.Join(rule, "+"))
		for _, row := range cells {
			fmt.Fprintln(w, tableLine(row, widths, t.columns, false))
		}
	}
	if len(t.rows) == 1 {
		fmt.Fprintln(w, "(1 row)")
	} else {
		fmt.Fprintf(w, "(%d rows)\n", len(t.rows))
	}
}

// tableLine pads cells to widths: numbers to the right, text to the left,
// headers of text columns centred.
func tableLine(cells []string, widths []int, columns []resultColumn, header bool) string {
	var b strings.Builder
	for i, cell := range cells {
		if i > 0 {
			b.WriteString("|")
		}
		pad := widths[i] - uniseg.StringWidth(cell)
		left := 0
		switch {
		case header:
			left = pad / 2
		case columns[i].numeric:
			left = pad
		}
		b.WriteString(" ")
		b.WriteString(strings.Repeat(" ", left))
		b.WriteString(cell)
		if i < len(cells)-1 {
			b.WriteString(strings.Repeat(" ", pad-left))
		}
		b.WriteString(" ")
	}
	return strings.TrimRight(b.String(), " ")
}

// writeExpanded prints t as psql's expanded display (\x) does, one
// "column | value" line per column, records separated by headers:
//
//	-[ RECORD 1 ]-
//	id   | 1
//	name | Guido
func writeExpanded(w io.Writer, t *resultTable, st style) {
	if len(t.rows) == 0 {
		fmt.Fprintln(w, "(0 rows)")
		return
	}
	nameWidth, valueWidth := 0, 0
	for _, c := range t.columns {
		nameWidth = max(nameWidth, uniseg.StringWidth(cellEscaper.Replace(c.name)))
	}
	for _, row := range t.rows {
		for _, v := range row {
			valueWidth = max(valueWidth, uniseg.StringWidth(cellEscaper.Replace(v)))
		}
	}
	for r, row := range t.rows {
		header := fmt.Sprintf("-[ RECORD %d ]", r+1)
		fmt.Fprintln(w, st.bold(header+strings.Repeat("-", max(1, nameWidth+valueWidth+3-len(header)))))
		for i, c := range t.columns {
			name := cellEscaper.Replace(c.name)
			value := ""
			if i < len(row) {
				value = cellEscaper.Replace(row[i])
			}
			line := name + strings.Repeat(" ", nameWidth-uniseg.StringWidth(name)) + " | " + value
			fmt.Fprintln(w, strings.TrimRight(line, " "))
		}
	}
}
