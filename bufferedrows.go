package piccolo

import (
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// bufferedRows are the rows of one result, read off the connection and kept
// until a caller's scan callback reads them as pgx.Rows: the first FETCH of
// a Batch that opened in one pipeline (batchopen.go) is read with the
// DECLARE it rode with, and handed to the first Next. pgx makes rows only
// from a live result, so this is the rows interface over copies of the
// raw values, decoding them as pgx's rows do (ScanRow, and Values through
// the same decoders as the maps of rowmaps.go).
type bufferedRows struct {
	conn   *pgx.Conn
	fields []pgconn.FieldDescription
	data   []byte // every value, back to back
	// ends has, per value, where it ends in data, or for NULL the
	// complement (^) of where the value before it ends.
	ends   []int
	rows   int // how many rows h holds
	row    int // how many Next has made current
	tag    pgconn.CommandTag
	err    error // the result's failure, after its rows (or a scan's)
	raw    [][]byte
	plan   rowPlan
	values valueArena
	closed bool
}

// keep copies the current row of rows; it is a scan callback.
func (h *bufferedRows) keep(rows pgx.Rows) error {
	if h.rows == 0 {
		h.fields = append([]pgconn.FieldDescription(nil), rows.FieldDescriptions()...)
	}
	h.rows++
	for _, v := range rows.RawValues() {
		if v == nil {
			h.ends = append(h.ends, ^len(h.data))
			continue
		}
		h.data = append(h.data, v...)
		h.ends = append(h.ends, len(h.data))
	}
	return nil
}

// Next makes the next row current; false once the rows have run out or
// were closed.
func (h *bufferedRows) Next() bool {
	if h.closed || h.row >= h.rows {
		h.closed = true
		return false
	}
	first := h.row * len(h.fields)
	h.row++
	start := 0
	if first > 0 {
		start = max(h.ends[first-1], ^h.ends[first-1])
	}
	h.raw = h.raw[:0]
	for _, end := range h.ends[first : first+len(h.fields)] {
		if end < 0 {
			h.raw = append(h.raw, nil)
			continue
		}
		h.raw = append(h.raw, h.data[start:end:end])
		start = end
	}
	return true
}

// Scan reads the current row into dest, as pgx's rows do: one
// pgx.RowScanner reads the row itself, otherwise one destination a column.
func (h *bufferedRows) Scan(dest ...any) error {
	var err error
	if rs, ok := oneRowScanner(dest); ok {
		err = rs.ScanRow(h)
	} else {
		err = pgx.ScanRow(h.conn.TypeMap(), h.fields, h.raw, dest...)
	}
	if err != nil {
		h.err, h.closed = err, true
	}
	return err
}

// oneRowScanner returns dest's only destination when it scans rows
// itself.
func oneRowScanner(dest []any) (pgx.RowScanner, bool) {
	if len(dest) != 1 {
		return nil, false
	}
	rs, ok := dest[0].(pgx.RowScanner)
	return rs, ok
}

// Values returns the current row's values, of the Go types pgx's rows
// give.
func (h *bufferedRows) Values() ([]any, error) {
	if !h.plan.isFor(h.fields) {
		h.plan.make(h.conn.TypeMap(), h.fields, &h.values.dst)
	}
	out := make([]any, len(h.raw))
	for i, v := range h.raw {
		var err error
		if out[i], err = h.plan.cols[i].decode(v, &h.values); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// RawValues returns the current row's values as the server sent them,
// valid until the next call of Next.
func (h *bufferedRows) RawValues() [][]byte { return h.raw }

// FieldDescriptions returns the columns of the rows.
func (h *bufferedRows) FieldDescriptions() []pgconn.FieldDescription { return h.fields }

// CommandTag returns the result's command tag once the rows are closed
// (before, like pgx's rows, an empty one).
func (h *bufferedRows) CommandTag() pgconn.CommandTag {
	if !h.closed {
		return pgconn.CommandTag{}
	}
	return h.tag
}

// Err returns the result's failure, or a scan's.
func (h *bufferedRows) Err() error { return h.err }

// Close ends the rows; the next Next returns false.
func (h *bufferedRows) Close() { h.closed = true }

// Conn returns the connection the rows were read from.
func (h *bufferedRows) Conn() *pgx.Conn { return h.conn }

// TypeMap returns the types the rows decode with.
func (h *bufferedRows) TypeMap() *pgtype.Map { return h.conn.TypeMap() }
