package query_test

import (
	"context"
	"strings"
	"testing"

	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/query"
)

// TestProjectionMatchesFieldsByNameAtRenderTime pins Into: every item
// fills the field of its name (the tag's, else the field name in
// snake_case; an item is named by As, its column or its function), and a
// projection whose items and fields do not pair up fails to render, with
// the name at fault.
func TestProjectionMatchesFieldsByNameAtRenderTime(t *testing.T) {
	t.Parallel()
	type full struct {
		ID         int64
		BandName   string `piccolo:"name"`
		Popularity int32
		Managers   int64 `piccolo:"count"`
	}
	type extra struct {
		Name    string
		Missing string
	}
	type twice struct {
		A string `piccolo:"name"`
		B string `piccolo:"name"`
	}
	type skipped struct {
		Name  string
		Notes string `piccolo:"-"`
	}
	grouped := Bands.Select(BandID, BandName, BandPopularity, query.CountRows()).GroupBy(BandID)
	if _, err := query.Into[full](grouped).Querystrings(); err != nil {
		t.Errorf("matching projection: %v", err)
	}
	if _, err := query.Into[skipped](Bands.Select(BandName)).Querystrings(); err != nil {
		t.Errorf("a field tagged - needs no item: %v", err)
	}
	for name, tt := range map[string]struct {
		q    piccolo.Query
		want string
	}{
		"item without field":  {query.Into[skipped](Bands.Select(BandName, BandPopularity)), `column "popularity" is named "popularity", and query_test.skipped has no field`},
		"field without item":  {query.Into[extra](Bands.Select(BandName)), `field Missing ("missing") has no item`},
		"two fields one name": {query.Into[twice](Bands.Select(BandName)), "fields A and B are both named"},
		"two items one name":  {query.Into[skipped](Bands.Select(BandName, ManagerName.Via(BandManager.Join(Managers)))), `two items are named "name"`},
		"scalar without As":   {query.Into[skipped](Bands.Select(query.Scalar[string](Managers.Select(ManagerName)))), "a scalar subquery needs a name: give it As"},
		"not a struct":        {query.Into[int](Bands.Select(BandName)), "int is not a struct"},
	} {
		_, err := tt.q.Querystrings()
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "query: Into ") {
			t.Errorf("%s: %v; want an error containing %q", name, err, tt.want)
		}
	}
}

// TestProjectionBatchesStreamThroughTheCursor pins that a joined
// projection streams through the engine's cursor in batches, typed, like
// a Select of the table's own struct.
func TestProjectionBatchesStreamThroughTheCursor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	eng := newEngine(t)
	fillPlayground(t, eng)
	type seat struct {
		Seat string
		Band string `piccolo:"band"`
	}
	band := ConcertBand1.Via(TicketConcert.Join(Concerts)).Join(Bands)
	p := query.Into[seat](Tickets.Select(TicketSeat, BandName.Via(band).As("band")).OrderBy(TicketSeat.Asc()))
	var got []string
	batches := 0
	for rows, err := range p.Batch(ctx, eng, piccolo.BatchSize(2)) {
		must(t, err)
		batches++
		for _, r := range rows {
			got = append(got, r.Seat+"@"+r.Band)
		}
	}
	if want := "A1@Pythonistas A2@Pythonistas B1@Rustaceans"; strings.Join(got, " ") != want || batches != 2 {
		t.Errorf("%d batches of %v; want 2 of %s", batches, got, want)
	}
	first, err := p.First(ctx, eng)
	if err != nil || first.Seat != "A1" {
		t.Errorf("First = %+v, %v", first, err)
	}
}
