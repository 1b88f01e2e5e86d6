package main

import (
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestPlaygroundTablesAreFlat checks what rowsTable relies on: every field
// of a playground struct is a column, in order.
func TestPlaygroundTablesAreFlat(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		typ     reflect.Type
		columns []string
	}{
		{reflect.TypeFor[Manager](), Managers.Columns()},
		{reflect.TypeFor[Band](), Bands.Columns()},
		{reflect.TypeFor[Venue](), Venues.Columns()},
		{reflect.TypeFor[Concert](), Concerts.Columns()},
		{reflect.TypeFor[Ticket](), Tickets.Columns()},
	} {
		if tt.typ.NumField() != len(tt.columns) {
			t.Errorf("%s: %d fields for the columns %v", tt.typ, tt.typ.NumField(), tt.columns)
		}
	}
}

func TestRowsTable(t *testing.T) {
	t.Parallel()
	manager := int64(7)
	bands := []Band{{ID: 1, Name: "Pythonistas", Manager: &manager, Popularity: 1000}, {ID: 2, Name: "Solo"}}
	res := rowsTable(Bands.Columns(), bands)
	want := &resultTable{
		columns: []resultColumn{{"id", true}, {"name", false}, {"manager", true}, {"popularity", true}},
		rows:    [][]string{{"1", "Pythonistas", "7", "1000"}, {"2", "Solo", "NULL", "0"}},
	}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("rowsTable = %+v; want %+v", res, want)
	}

	res = rowsTable(Bands.Columns(), bands, BandName.Name(), BandID.Name())
	if got := res.columns; !slices.Equal(got, []resultColumn{{"id", true}, {"name", false}}) || !slices.Equal(res.rows[1], []string{"2", "Solo"}) {
		t.Errorf("two columns: %+v", res)
	}

	concert := Concert{Starts: time.Date(2025, 6, 1, 19, 0, 0, 0, time.UTC), Duration: 90 * time.Minute}
	res = rowsTable(Concerts.Columns(), []Concert{concert}, "starts", "duration")
	if !slices.Equal(res.rows[0], []string{"2025-06-01 19:00:00", "1h30m0s"}) || res.columns[1].numeric {
		t.Errorf("times: %+v", res)
	}
}
