package query

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Unique declares a unique key of several columns, named by their column
// names: Create renders it as a UNIQUE (a, b) constraint, and GetOrCreate
// and OnConflict accept it as their key. A single column is declared
// unique with the unique tag instead.
//
// Declare here too a unique index the table gets another way (a
// CreateIndex(...).Unique() or a migration): the table cannot see the
// database's indexes, and GetOrCreate and OnConflict refuse, before
// sending anything, a key that is not the primary key, a column tagged
// unique or a key declared with Unique (PostgreSQL would refuse it with
// 42P10).
func Unique(columns ...string) TableOption {
	return func(d *tableDef) error {
		if len(columns) < 2 {
			return errors.New("Unique needs at least two columns; tag a single column unique")
		}
		d.uniqueNames = append(d.uniqueNames, slices.Clone(columns))
		return nil
	}
}

// resolveUniques turns the names given to Unique into columns.
func (d *tableDef) resolveUniques() error {
	for _, names := range d.uniqueNames {
		key := make([]*column, len(names))
		for i, name := range names {
			for _, c := range d.cols {
				if c.name == name {
					key[i] = c
				}
			}
			if key[i] == nil {
				return fmt.Errorf("Unique(%s): no column %q", strings.Join(names, ", "), name)
			}
			if slices.Contains(key[:i], key[i]) {
				return fmt.Errorf("Unique(%s): column %q given twice", strings.Join(names, ", "), name)
			}
		}
		d.uniques = append(d.uniques, key)
	}
	return nil
}

// uniqueConstraints renders the table's UNIQUE (a, b) constraints for
// CREATE TABLE.
func (d *tableDef) uniqueConstraints() string {
	var b strings.Builder
	for _, key := range d.uniques {
		b.WriteString(", UNIQUE (" + columnList(key) + ")")
	}
	return b.String()
}

// checkUniqueKey refuses a conflict target (an ON CONFLICT list, a
// GetOrCreate key) that is not exactly a unique key the table declares: the
// primary key, a column tagged unique or a key given to Unique.
// PostgreSQL infers the arbiter index from exactly these columns, in any
// order, and fails with 42P10 when none has them.
func (d *tableDef) checkUniqueKey(key []*column) error {
	if len(key) == 0 || slices.Contains(key, nil) {
		return nil // reported already
	}
	if len(key) == 1 && (key[0].pk || key[0].unique) {
		return nil
	}
	for _, u := range d.uniques {
		if len(u) == len(key) && !slices.ContainsFunc(key, func(c *column) bool { return !slices.Contains(u, c) }) {
			return nil
		}
	}
	names := make([]string, len(key))
	for i, c := range key {
		names[i] = fmt.Sprintf("%q", c.name)
	}
	list := strings.Join(names, ", ")
	declare := "tag the column unique"
	if len(key) > 1 {
		declare = "add query.Unique(" + list + ") to NewTable"
	}
	return fmt.Errorf("the key (%s) is not the primary key, a column tagged unique or a key declared with query.Unique: "+
		"ON CONFLICT needs a unique constraint or index on exactly these columns; "+
		"if the database has one the table does not declare, %s", list, declare)
}
