package query

import (
	"context"
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
		{"save without pk", first(keyless.Save(&row{}).Querystrings()), "Save needs a primary key"},
		{"remove without pk", first(keyless.Remove(&row{}).Querystrings()), "Remove needs a primary key"},
		{"remove unsaved", first(bands.Remove(&band{Name: "new"}).Querystrings()), "the object's ID is zero"},
		{"remove nil", first(bands.Remove(nil).Querystrings()), "nil object"},
		{"save nil", first(bands.Save(nil).Querystrings()), "row 0 is nil"},
		{"get or create without key", first(bands.GetOrCreate(&band{}).Querystrings()), "no key columns"},
		{"get or create, key of another table", first(bands.GetOrCreate(&band{}, mName).Querystrings()), `belongs to table "manager"`},
		{"get or create, NULL key", first(bands.GetOrCreate(&band{}, bManager).Querystrings()), "is nil; NULL matches nothing"},
	} {
		if tt.err == nil || !strings.Contains(tt.err.Error(), tt.want) {
			t.Errorf("%s: %v; want an error containing %q", tt.name, tt.err, tt.want)
		}
	}
}

// first returns the error of a Querystrings call.
func first[V any](_ V, err error) error { return err }

func TestGetOrCreateGivesUpWhenTheRowKeepsVanishing(t *testing.T) {
	t.Parallel()
	// The fake returns no row to every statement: the lookup misses and the
	// insert conflicts, as when the conflicting row is deleted each time.
	e := &fakeEngine{}
	g := bands.GetOrCreate(&band{Name: "ghost"}, bName)
	err := g.Run(context.Background(), e)
	if err == nil || !strings.Contains(err.Error(), "deleted between insert and lookup 3 times") || g.Created() {
		t.Errorf("Run = %v, created %v", err, g.Created())
	}
	if len(e.sent) != 2*getOrCreateAttempts || e.txs != 0 {
		t.Errorf("sent %d statements in %d transactions; want %d in none", len(e.sent), e.txs, 2*getOrCreateAttempts)
	}

	e.rows = [][]any{{int64(9), "found", (*int64)(nil), int32(3), 1.5}}
	g = bands.GetOrCreate(&band{Name: "found"}, bName)
	if err := g.Run(context.Background(), e); err != nil || g.Created() || g.Row().ID != 9 || g.Row().Rating != 1.5 {
		t.Errorf("Run = %v, created %v, row %+v; want the row found", err, g.Created(), g.Row())
	}
}
