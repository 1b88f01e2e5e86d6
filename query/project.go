package query

import (
	"context"
	"fmt"
	"iter"
	"reflect"

	"github.com/jackc/pgx/v5"
	"github.com/piccolo-go/piccolo"
)

// Projection is a Select whose rows scan into R, a struct of your own:
// columns of the table and of joined tables, aggregates and scalar
// subqueries, each into the field of its name. Build it with Into.
type Projection[R any] struct {
	q selectCore
}

// Into projects s into R: each item of s's select list fills the field of
// R whose name is the item's (the piccolo tag's column name, else the field
// name in snake_case, as for tables). An item's name is its As alias, else
// its column's name, else its function's (count, sum, avg, min, max).
// Rendering fails, before anything is sent, unless every item has a field
// and every field an item:
//
//	type BandRow struct {
//		Band    string `piccolo:"band"`
//		Manager *string // NULL when the band has no manager (a LEFT JOIN)
//	}
//	m := BandManager.Join(Managers)
//	rows, err := query.Into[BandRow](Bands.Select(BandName.As("band"), ManagerName.Via(m).As("manager"))).All(ctx, eng)
func Into[R, T any](s Select[T]) Projection[R] { return Projection[R]{q: s.q} }

// Querystrings implements piccolo.Query.
func (p Projection[R]) Querystrings() ([]piccolo.Querystring, error) {
	q, _, err := p.render()
	return one(q, err)
}

// All runs the projection and returns its rows; see Select.All.
func (p Projection[R]) All(ctx context.Context, e piccolo.Engine, opts ...piccolo.Option) ([]R, error) {
	q, fields, err := p.render()
	if err != nil {
		return nil, err
	}
	return queryAll[R](ctx, e, q, fields, p.q.runOptions(opts))
}

// First returns the first row; with none, an error for which
// errors.Is(err, sql.ErrNoRows) holds.
func (p Projection[R]) First(ctx context.Context, e piccolo.Engine, opts ...piccolo.Option) (R, error) {
	p.q.limit, p.q.hasLimit = 1, true
	rows, err := p.All(ctx, e, opts...)
	return firstRow(rows, err, p.q.t.name)
}

// Batch streams the rows through a server-side cursor, like Select.Batch.
func (p Projection[R]) Batch(ctx context.Context, e piccolo.Engine, opts ...piccolo.Option) iter.Seq2[[]R, error] {
	q, fields, err := p.render()
	return batch[R](ctx, e, q, err, func(out *[]R) func(pgx.Rows) error {
		return appendRow(out, fields)
	}, p.q.runOptions(opts))
}

// render renders the SELECT and matches its items with R's fields: the
// scan plan, one field per item, in order.
func (p Projection[R]) render() (piccolo.Querystring, []*column, error) {
	typ := reflect.TypeFor[R]()
	fields, err := p.q.projectInto(typ)
	if err != nil {
		return piccolo.Querystring{}, nil, &opError{op: "Into " + typ.String() + " from", table: p.q.t.name, err: err}
	}
	q, err := p.q.statement("Select")
	return q, fields, err
}

// projectInto matches the select list's items with the fields of the
// struct type typ by name.
func (q *selectCore) projectInto(typ reflect.Type) ([]*column, error) {
	if typ.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%s is not a struct", typ)
	}
	var fields []*column
	if err := structFields(typ, 0, &fields); err != nil {
		return nil, err
	}
	byName := make(map[string]*column, len(fields))
	for _, f := range fields {
		if o, ok := byName[f.name]; ok {
			return nil, fmt.Errorf("fields %s and %s are both named %q", o.field, f.field, f.name)
		}
		byName[f.name] = f
	}
	taken := make(map[*column]bool, len(fields))
	items := q.cols
	if items == nil {
		for _, c := range q.t.cols {
			items = append(items, colRef{c: c})
		}
	}
	plan := make([]*column, len(items))
	for i, ref := range items {
		name := ref.alias
		switch {
		case ref.err != nil:
			return nil, ref.err
		case name != "":
		case ref.expr != nil:
			name = ref.expr.defaultName()
		case ref.c != nil:
			name = ref.c.name
		}
		if name == "" {
			return nil, fmt.Errorf("%s needs a name: give it As", ref.describe())
		}
		f, ok := byName[name]
		switch {
		case !ok:
			return nil, fmt.Errorf("%s is named %q, and %s has no field of that name (tag a field `piccolo:%q`, or name the item with As)", ref.describe(), name, typ, name)
		case taken[f]:
			return nil, fmt.Errorf("two items are named %q: name one with As", name)
		}
		taken[f] = true
		plan[i] = f
	}
	for _, f := range fields {
		if !taken[f] {
			return nil, fmt.Errorf("field %s (%q) has no item in the select list: select it, or tag the field `piccolo:\"-\"`", f.field, f.name)
		}
	}
	return plan, nil
}

// structFields collects the exported fields of the struct type typ found
// at offset base, flattening untagged embedded structs. Each is a column
// used only for its name, field, offset and pointer.
func structFields(typ reflect.Type, base uintptr, out *[]*column) error {
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag, tagged := f.Tag.Lookup("piccolo")
		if f.Anonymous && !tagged && f.Type.Kind() == reflect.Struct {
			if err := structFields(f.Type, base+f.Offset, out); err != nil {
				return err
			}
			continue
		}
		if !f.IsExported() || tag == "-" {
			continue
		}
		name, err := parseTag(tag)
		if err != nil {
			return fmt.Errorf("field %s: %w", f.Name, err)
		}
		if name.name == "" {
			name.name = snakeCase(f.Name)
		}
		*out = append(*out, &column{name: name.name, field: f.Name, goType: f.Type, offset: base + f.Offset, ptr: pointerFor(f.Type)})
	}
	return nil
}
