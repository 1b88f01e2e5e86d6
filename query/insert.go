package query

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"unsafe"

	"github.com/piccolo-go/piccolo"
)

// chunkParams is how many parameters an Insert puts in one statement.
// PostgreSQL accepts up to 65535 (the wire protocol counts them in 16
// bits), but large statements are slower per
// row (parsing, planning, pgx's describe): 10,000 rows of 4 columns took
// 48 ms in one statement, 29 ms in chunks of 1,000 rows and 44 ms in
// chunks of 2,000 (BenchmarkInsert10k).
const chunkParams = 4000

// Insert adds rows of T. Build it with Table.Insert; it is a value, so
// every method returns a modified copy. The rows are read when the query
// renders, not when Insert is called.
//
// A primary key whose field is zero (0, "", the zero UUID, ...) is sent
// as DEFAULT when the column has one (an identity or serial column, or
// default= such as gen_random_uuid()), so the server generates it and Run
// writes it back; a non-zero key is inserted as it is. A zero key whose
// column has no DEFAULT fails to render with ErrZeroKey: sent as it is,
// every such row would get the same key. Many rows
// render as several INSERT statements of about 4,000 parameters each
// (PostgreSQL's limit is 65535; smaller statements measured faster); Run
// sends them in one transaction.
type Insert[T any] struct {
	t            *Table[T]
	rows         []*T
	omit         []colRef
	returning    []colRef
	returningSet bool
	conflict     string // "", "NOTHING" or "UPDATE"
	target       []colRef
	set          []colRef
}

// Insert starts an INSERT of rows. Run writes the RETURNING columns (by
// default a primary key with a DEFAULT, and omitted columns) back into
// them.
func (t *Table[T]) Insert(rows ...*T) Insert[T] {
	return Insert[T]{t: t, rows: slices.Clone(rows)}
}

// Omit leaves cols out of the INSERT, so that their database defaults
// (default= in the tag) apply; Run reads the values back. A Go zero value
// is otherwise inserted as it is: an int field with default=7 stores 0
// unless omitted.
func (i Insert[T]) Omit(cols ...Col) Insert[T] {
	i.omit = slices.Concat(i.omit, refs(cols))
	return i
}

// Returning sets the RETURNING columns that Run writes back into the rows,
// replacing the default (a primary key with a DEFAULT, and omitted
// columns).
// Returning() with no columns sends no RETURNING clause.
func (i Insert[T]) Returning(cols ...Col) Insert[T] {
	i.returning, i.returningSet = refs(cols), true
	return i
}

// OnConflictDoNothing skips rows that violate a unique constraint: ON
// CONFLICT (target) DO NOTHING, or any constraint with no target. Skipped
// rows return nothing, so rows cannot be matched with RETURNING output: the
// default RETURNING is dropped, and an explicit Returning fails rendering.
//
// A target, here and in OnConflictDoUpdate, must be a unique key the table
// declares (the primary key, a column tagged unique, a key given to
// Unique), or rendering fails: see Unique.
func (i Insert[T]) OnConflictDoNothing(target ...Col) Insert[T] {
	i.conflict, i.target, i.set = "NOTHING", refs(target), nil
	return i
}

// OnConflictDoUpdate turns a conflict on the unique columns target into an
// update of set from the row being inserted (an upsert): ON CONFLICT
// (target) DO UPDATE SET c = EXCLUDED.c. With no set columns, every
// inserted column but the target and the primary key is updated.
func (i Insert[T]) OnConflictDoUpdate(target []Col, set ...Col) Insert[T] {
	i.conflict, i.target, i.set = "UPDATE", refs(target), refs(set)
	return i
}

// Querystrings implements piccolo.Query: one statement per chunk of rows.
func (i Insert[T]) Querystrings() ([]piccolo.Querystring, error) {
	p, err := i.plan()
	if err != nil {
		return nil, err
	}
	qs := make([]piccolo.Querystring, 0, len(p.chunks))
	for _, rows := range p.chunks {
		q, err := i.renderChunk(p, rows)
		if err != nil {
			return nil, err
		}
		qs = append(qs, q)
	}
	return qs, nil
}

// insertShape is what every chunk of an Insert shares but its rows: the
// columns and the statement around the VALUES.
type insertShape struct {
	cols      []*column // inserted, in table order
	returning []*column
	head      string // INSERT INTO t (cols) VALUES
	tail      string // the ON CONFLICT and RETURNING clauses
}

// insertShape returns the shape of an INSERT of cols, whose clauses after
// the VALUES are conflict (rendered) and RETURNING returning.
func (d *tableDef) insertShape(cols, returning []*column, conflict string) insertShape {
	r := newRenderer(d)
	r.write(conflict)
	r.returning(returningRefs(returning))
	return insertShape{cols: cols, returning: returning, tail: r.b.String(),
		head: "INSERT INTO " + d.quoted + " (" + columnList(cols) + ") VALUES "}
}

// insertPlan is what every chunk of an Insert shares, and its chunks.
type insertPlan[T any] struct {
	insertShape
	chunks [][]*T
}

// plan resolves the columns and clauses and splits the rows into chunks.
func (i Insert[T]) plan() (*insertPlan[T], error) {
	d := i.t.def
	r := newRenderer(d)
	if len(i.rows) == 0 {
		r.fail(errors.New("no rows"))
	}
	for n, row := range i.rows {
		if row == nil {
			r.fail(fmt.Errorf("row %d is nil", n))
		}
	}
	p := &insertPlan[T]{insertShape: d.insertAll}
	if len(i.omit) > 0 || i.returningSet || i.conflict != "" {
		p.insertShape = i.shape(r)
	} else {
		checkKeys(r, d.pk, p.cols, i.rows)
	}
	if _, err := r.querystring("Insert into"); err != nil {
		return nil, err
	}
	perChunk := max(1, chunkParams/max(1, len(p.cols)))
	for rows := range slices.Chunk(i.rows, perChunk) {
		p.chunks = append(p.chunks, rows)
	}
	return p, nil
}

// shape resolves the Insert's columns and clauses and checks its rows'
// keys, recording failures in r.
func (i Insert[T]) shape(r *renderer) insertShape {
	d := i.t.def
	omitted := map[*column]bool{}
	for _, ref := range i.omit {
		omitted[r.column(ref)] = true
	}
	var cols, omittedCols []*column
	for _, c := range d.cols {
		if omitted[c] {
			omittedCols = append(omittedCols, c)
		} else {
			cols = append(cols, c)
		}
	}
	if len(cols) == 0 {
		r.fail(errors.New("every column is omitted"))
	}
	checkKeys(r, d.pk, cols, i.rows)
	returning := i.returningCols(r, omittedCols)
	conflict := newRenderer(d)
	i.renderConflict(conflict, cols)
	if conflict.err != nil {
		r.fail(conflict.err)
	}
	return d.insertShape(cols, returning, conflict.b.String())
}

// returningCols resolves the RETURNING columns: explicit ones, or a
// primary key with a DEFAULT and the omitted columns.
func (i Insert[T]) returningCols(r *renderer, omitted []*column) []*column {
	if i.returningSet {
		if i.conflict == "NOTHING" && len(i.returning) > 0 {
			r.fail(errors.New("Returning with OnConflictDoNothing: skipped rows return nothing, so rows cannot be matched"))
		}
		cols := make([]*column, 0, len(i.returning))
		for _, ref := range i.returning {
			cols = append(cols, r.column(ref))
		}
		return cols
	}
	if i.conflict == "NOTHING" {
		return nil
	}
	var cols []*column
	if pk := i.t.def.pk; pk != nil && pk.autoKey && !slices.Contains(omitted, pk) {
		cols = append(cols, pk)
	}
	return append(cols, omitted...)
}

// returningRefs turns resolved columns back into references for rendering.
func returningRefs(cols []*column) []colRef {
	out := make([]colRef, 0, len(cols))
	for _, c := range cols {
		if c != nil {
			out = append(out, colRef{c: c})
		}
	}
	return out
}

// renderConflict writes the ON CONFLICT clause.
func (i Insert[T]) renderConflict(r *renderer, inserted []*column) {
	if i.conflict == "" {
		return
	}
	r.write(" ON CONFLICT")
	if len(i.target) > 0 {
		r.write(" (")
		key := make([]*column, len(i.target))
		for n, ref := range i.target {
			if n > 0 {
				r.write(", ")
			}
			if key[n] = r.column(ref); key[n] != nil {
				r.write(key[n].quoted)
			}
		}
		r.write(")")
		if err := i.t.def.checkUniqueKey(key); err != nil {
			r.fail(err)
		}
	}
	if i.conflict == "NOTHING" {
		r.write(" DO NOTHING")
		return
	}
	if len(i.target) == 0 {
		r.fail(errors.New("OnConflictDoUpdate needs the conflict's target columns"))
	}
	set := i.set
	if len(set) == 0 {
		for _, c := range inserted {
			if !c.pk && !slices.ContainsFunc(i.target, func(t colRef) bool { return t.c == c }) {
				set = append(set, colRef{c: c})
			}
		}
	}
	if len(set) == 0 {
		r.fail(errors.New("OnConflictDoUpdate has no column to update"))
	}
	r.write(" DO UPDATE SET ")
	for n, ref := range set {
		if n > 0 {
			r.write(", ")
		}
		if c := r.column(ref); c != nil {
			r.write(c.quoted, " = EXCLUDED.", c.quoted)
		}
	}
}

// renderChunk renders the INSERT of one chunk of rows.
func (i Insert[T]) renderChunk(p *insertPlan[T], rows []*T) (piccolo.Querystring, error) {
	r := newRenderer(i.t.def)
	r.args = make([]any, 0, len(rows)*len(p.cols))
	// Room for every placeholder ("$n, ", up to 4 digits) at once.
	r.b.Grow(len(p.head) + len(rows)*(len(p.cols)*7+4) + len(p.tail))
	r.write(p.head)
	for n, row := range rows {
		if n > 0 {
			r.write(", ")
		}
		r.write("(")
		for k, c := range p.cols {
			if k > 0 {
				r.write(", ")
			}
			v := c.value(unsafe.Pointer(row))
			if c.autoKey && v.IsZero() {
				r.write("DEFAULT")
				continue
			}
			r.param(v.Interface())
		}
		r.write(")")
	}
	r.write(p.tail)
	return r.querystring("Insert into")
}

// value returns the column's field in the struct at p.
func (c *column) value(p unsafe.Pointer) reflect.Value {
	return reflect.NewAt(c.goType, unsafe.Add(p, c.offset)).Elem()
}
