package query

import (
	"strings"
	"testing"
)

func TestObjectQueriesRefuseToRender(t *testing.T) {
	t.Parallel()
	type row struct {
		Name string `piccolo:"name"`
	}
	keyless := MustTable[row]("keyless")
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"save without pk", first(keyless.Save(&row{}).Querystrings()), `query: Save into "keyless": the table has no primary key`},
		{"remove without pk", first(keyless.Remove(&row{}).Querystrings()), `query: Remove from "keyless": the table has no primary key`},
		{"remove unsaved", first(bands.Remove(&band{Name: "new"}).Querystrings()), "the object's ID is zero"},
		{"remove nil", first(bands.Remove(nil).Querystrings()), "nil object"},
		{"save nil", first(bands.Save(nil).Querystrings()), "row 0 is nil"},
		{"get or create without key", first(bands.GetOrCreate(&band{}).Querystrings()), "no key columns"},
		{"get or create, key of another table", first(bands.GetOrCreate(&band{}, mName).Querystrings()), `belongs to table "manager"`},
		{"get or create, NULL key", first(bands.GetOrCreate(&band{}, bManager).Querystrings()), "the object's Manager is NULL, which equals no key"},
	} {
		if tt.err == nil || !strings.Contains(tt.err.Error(), tt.want) {
			t.Errorf("%s: %v; want an error containing %q", tt.name, tt.err, tt.want)
		}
	}
}

// first returns the error of a Querystrings call.
func first[V any](_ V, err error) error { return err }
