package query

import (
	"errors"
	"strings"

	"github.com/piccolo-go/piccolo"
)

// CreateIndex creates an index on columns of the table. Build it with
// Table.CreateIndex.
type CreateIndex struct {
	t            *tableDef
	cols         []colRef
	name         string
	unique       bool
	concurrently bool
	ifNotExists  bool
}

// CreateIndex starts a CREATE INDEX on cols, in that order, named
// <table>_<col>_..._idx unless Name says otherwise.
func (t *Table[T]) CreateIndex(cols ...Col) CreateIndex {
	return CreateIndex{t: t.def, cols: refs(cols)}
}

// Name names the index.
func (c CreateIndex) Name(name string) CreateIndex {
	c.name = name
	return c
}

// Unique makes it a unique index.
func (c CreateIndex) Unique() CreateIndex {
	c.unique = true
	return c
}

// Concurrently builds the index without blocking writes. PostgreSQL
// refuses CREATE INDEX CONCURRENTLY inside a transaction block: run it on
// its own, not in an Atomic or Transaction.
func (c CreateIndex) Concurrently() CreateIndex {
	c.concurrently = true
	return c
}

// IfNotExists makes creating an existing index a no-op.
func (c CreateIndex) IfNotExists() CreateIndex {
	c.ifNotExists = true
	return c
}

// Querystrings implements piccolo.Query.
func (c CreateIndex) Querystrings() ([]piccolo.Querystring, error) {
	r := newRenderer(c.t)
	if len(c.cols) == 0 {
		r.fail(errors.New("no columns"))
	}
	r.colList(c.cols)
	name := c.name
	if name == "" {
		parts := []string{c.t.name}
		for _, ref := range c.cols {
			if ref.c != nil {
				parts = append(parts, ref.c.name)
			}
		}
		name = strings.Join(append(parts, "idx"), "_")
	}
	quoted := r.quoted(quoteIdent(name))
	cols := r.b.String()
	r.b.Reset()
	r.write(indexSQL(c.t, quoted, c.unique, c.concurrently, c.ifNotExists, cols))
	return one(r.querystring("CreateIndex on"))
}

// DropIndex drops an index of the table's schema. Build it with
// Table.DropIndex.
type DropIndex struct {
	t            *tableDef
	name         string
	ifExists     bool
	cascade      bool
	concurrently bool
}

// DropIndex starts a DROP INDEX of the index name.
func (t *Table[T]) DropIndex(name string) DropIndex {
	return DropIndex{t: t.def, name: name}
}

// IfExists makes dropping a missing index a no-op.
func (d DropIndex) IfExists() DropIndex {
	d.ifExists = true
	return d
}

// Cascade also drops what depends on the index.
func (d DropIndex) Cascade() DropIndex {
	d.cascade = true
	return d
}

// Concurrently drops the index without blocking reads and writes; like
// CreateIndex.Concurrently it cannot run inside a transaction block.
func (d DropIndex) Concurrently() DropIndex {
	d.concurrently = true
	return d
}

// Querystrings implements piccolo.Query.
func (d DropIndex) Querystrings() ([]piccolo.Querystring, error) {
	r := newRenderer(d.t)
	name := r.quoted(quoteQualified(d.t.schema, d.name))
	if d.concurrently && d.cascade {
		r.fail(errors.New("PostgreSQL does not allow CONCURRENTLY with CASCADE"))
	}
	r.write("DROP INDEX ")
	if d.concurrently {
		r.write("CONCURRENTLY ")
	}
	r.write(ifExists(d.ifExists), name, cascade(d.cascade))
	return one(r.querystring("DropIndex on"))
}
