package query

import (
	"errors"

	"github.com/piccolo-go/piccolo"
)

// AddColumn adds a declared column to an existing table (a field added to
// the struct), then its index if the column is tagged index. Build it with
// Table.AddColumn. Adding a NOT NULL column without a default fails on a
// table that has rows.
type AddColumn struct {
	t           *tableDef
	col         colRef
	ifNotExists bool
}

// AddColumn starts an ALTER TABLE ... ADD COLUMN of col.
func (t *Table[T]) AddColumn(col Col) AddColumn {
	return AddColumn{t: t.def, col: refOf(col)}
}

// IfNotExists makes adding an existing column (and index) a no-op.
func (a AddColumn) IfNotExists() AddColumn {
	a.ifNotExists = true
	return a
}

// Querystrings implements piccolo.Query.
func (a AddColumn) Querystrings() ([]piccolo.Querystring, error) {
	r := newRenderer(a.t)
	c := r.column(a.col)
	if _, err := r.querystring("AddColumn to"); err != nil {
		return nil, err
	}
	add := "ALTER TABLE " + a.t.quoted + " ADD COLUMN "
	if a.ifNotExists {
		add += "IF NOT EXISTS "
	}
	qs := []piccolo.Querystring{{SQL: add + c.definition()}}
	return append(qs, a.t.indexes([]*column{c}, a.ifNotExists)...), nil
}

// DropColumn drops a column by name: the struct field is usually gone
// already. Build it with Table.DropColumn.
type DropColumn struct {
	t        *tableDef
	name     string
	ifExists bool
	cascade  bool
}

// DropColumn starts an ALTER TABLE ... DROP COLUMN of the column name.
func (t *Table[T]) DropColumn(name string) DropColumn {
	return DropColumn{t: t.def, name: name}
}

// IfExists makes dropping a missing column a no-op.
func (d DropColumn) IfExists() DropColumn {
	d.ifExists = true
	return d
}

// Cascade also drops what depends on the column (views, constraints).
func (d DropColumn) Cascade() DropColumn {
	d.cascade = true
	return d
}

// Querystrings implements piccolo.Query.
func (d DropColumn) Querystrings() ([]piccolo.Querystring, error) {
	r := newRenderer(d.t)
	name := r.quoted(quoteIdent(d.name))
	r.write("ALTER TABLE ", d.t.quoted, " DROP COLUMN ", ifExists(d.ifExists), name, cascade(d.cascade))
	return one(r.querystring("DropColumn from"))
}

// RenameColumn renames a column to the name of a declared column (the
// struct field's new name). Build it with Table.RenameColumn.
type RenameColumn struct {
	t   *tableDef
	old string
	col colRef
}

// RenameColumn starts an ALTER TABLE ... RENAME COLUMN old TO col's name.
func (t *Table[T]) RenameColumn(old string, col Col) RenameColumn {
	return RenameColumn{t: t.def, old: old, col: refOf(col)}
}

// Querystrings implements piccolo.Query.
func (rc RenameColumn) Querystrings() ([]piccolo.Querystring, error) {
	r := newRenderer(rc.t)
	old := r.quoted(quoteIdent(rc.old))
	c := r.column(rc.col)
	if c != nil && c.name == rc.old {
		r.fail(errors.New("RenameColumn to the same name " + c.quoted))
	}
	r.write("ALTER TABLE ", rc.t.quoted, " RENAME COLUMN ", old, " TO ")
	r.col(rc.col)
	return one(r.querystring("RenameColumn of"))
}
