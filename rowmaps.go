package piccolo

import (
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// This file reads rows as maps from column name to value (RunQuerystring,
// Batch.Next, the response log). The maps and their values are exactly
// pgx.RowToMap's (rows.Values' Go types, the last of two columns of the same
// name winning), made with less work per row: a result's column names and
// decoders are looked up once, not per row, and each value is decoded
// straight into its map (pgtype's DecodeValue scans into a variable that
// escapes, then boxes it: two allocations a value), the values of a result
// sharing backing arrays (see valueArena).

// mapRows collects the rows of one result as maps.
type mapRows struct {
	out    []map[string]any
	plan   rowPlan
	values valueArena
}

// scan appends the current row of rows to m.out.
func (m *mapRows) scan(rows pgx.Rows) error {
	row, err := m.plan.decode(rows, &m.values)
	if err != nil {
		return err
	}
	m.out = append(m.out, row)
	return nil
}

// rowPlan decodes the rows of one result. It is made on the result's first
// row, and made again should a later row have columns of other types.
type rowPlan struct {
	cols []columnDecoder
}

// decode returns the current row of rows as a map.
func (p *rowPlan) decode(rows pgx.Rows, arena *valueArena) (map[string]any, error) {
	fields := rows.FieldDescriptions()
	if !p.isFor(fields) {
		p.make(typeMap(rows), fields, &arena.dst)
	}
	raw := rows.RawValues()
	row := make(map[string]any, len(fields))
	for i := range p.cols {
		v, err := p.cols[i].decode(raw[i], arena)
		if err != nil {
			return nil, err
		}
		row[fields[i].Name] = v
	}
	return row, nil
}

// isFor reports whether p decodes rows of fields: a column's decoder
// depends on its type and format only (its name is read from fields).
func (p *rowPlan) isFor(fields []pgconn.FieldDescription) bool {
	if p.cols == nil || len(fields) != len(p.cols) {
		return false
	}
	for i := range p.cols {
		if p.cols[i].oid != fields[i].DataTypeOID || p.cols[i].format != fields[i].Format {
			return false
		}
	}
	return true
}

// make plans the decoding of fields with tm, pgx's types of the
// connection.
func (p *rowPlan) make(tm *pgtype.Map, fields []pgconn.FieldDescription, d *scanDsts) {
	p.cols = make([]columnDecoder, len(fields))
	for i, fd := range fields {
		p.cols[i].plan(tm, fd.DataTypeOID, fd.Format, d)
	}
}

// typeMap returns the types rows decode with: pgx's rows say (rows read
// from a pipeline have no *pgx.Conn), else their connection's.
func typeMap(rows pgx.Rows) *pgtype.Map {
	if r, ok := rows.(interface{ TypeMap() *pgtype.Map }); ok {
		return r.TypeMap()
	}
	return rows.Conn().TypeMap()
}
