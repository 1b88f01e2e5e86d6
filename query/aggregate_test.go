package query_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/query"
)

// TestAggregatesGroupAndFilterWithTypedResults pins the aggregates: each
// scans into the Go type it promises (CountRows and CountOf int64, Sum,
// Min and Max the column's type, Avg float64, NULL over no rows into a
// pointer), per group with GroupBy, filtered by Having, ordered by an
// aggregate, counted Distinct; and the combinations PostgreSQL refuses
// fail to render instead.
func TestAggregatesGroupAndFilterWithTypedResults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	eng := newEngine(t)
	fillPlayground(t, eng)

	type totals struct {
		Bands int64   `piccolo:"bands"`
		Sum   int32   `piccolo:"sum"`
		Avg   float64 `piccolo:"avg"`
		Min   int32   `piccolo:"min"`
		Max   string  `piccolo:"max"`
	}
	got, err := query.Into[totals](Bands.Select(query.CountRows().As("bands"), query.Sum(BandPopularity),
		query.Avg(BandPopularity), query.Min(BandPopularity), query.Max(BandName))).First(ctx, eng)
	must(t, err)
	if want := (totals{3, 3010, 3010.0 / 3, 10, "Rustaceans"}); got.Bands != want.Bands || got.Sum != want.Sum ||
		got.Min != want.Min || got.Max != want.Max || got.Avg < want.Avg-1e-9 || got.Avg > want.Avg+1e-9 {
		t.Errorf("totals %+v; want %+v", got, want)
	}
	type empty struct {
		Sum *int32 `piccolo:"sum"`
		N   int64  `piccolo:"count"`
	}
	none, err := query.Into[empty](Bands.Select(query.Sum(BandPopularity), query.CountRows()).Where(BandName.Eq("nobody"))).First(ctx, eng)
	if err != nil || none.Sum != nil || none.N != 0 {
		t.Errorf("over no rows: %+v, %v; want a NULL sum and a zero count", none, err)
	}

	type perBand struct {
		Name    string
		Tickets int64 `piccolo:"count"`
		Seats   int64 `piccolo:"seats"`
	}
	band := ConcertBand1.Via(TicketConcert.Join(Concerts)).Join(Bands)
	groups, err := query.Into[perBand](Tickets.Select(BandName.Via(band), query.CountRows(), query.CountOf(TicketSeat).Distinct().As("seats")).
		GroupBy(BandName.Via(band)).
		Having(query.CountRows().Ge(1)).
		OrderBy(query.CountRows().Desc())).All(ctx, eng)
	must(t, err)
	if want := []perBand{{"Pythonistas", 2, 2}, {"Rustaceans", 1, 1}}; !reflect.DeepEqual(groups, want) {
		t.Errorf("tickets per band %+v; want %+v", groups, want)
	}
	busy, err := query.Into[perBand](Tickets.Select(BandName.Via(band), query.CountRows(), query.CountOf(TicketSeat).Distinct().As("seats")).
		GroupBy(BandName.Via(band)).Having(query.CountRows().Gt(1))).All(ctx, eng)
	if err != nil || len(busy) != 1 || busy[0].Name != "Pythonistas" {
		t.Errorf("Having count > 1: %+v, %v", busy, err)
	}
	// Grouped by the primary key, the table's other columns may be selected.
	byID, err := query.Into[perBand](Bands.Select(BandName, query.CountRows(), query.CountOf(BandManager).Distinct().As("seats")).
		GroupBy(BandID).OrderBy(BandName.Asc())).All(ctx, eng)
	if err != nil || len(byID) != 3 {
		t.Errorf("grouped by the primary key: %+v, %v", byID, err)
	}

	for name, tt := range map[string]struct {
		q    piccolo.Query
		want string
	}{
		"ungrouped column":       {query.Into[perBand](Bands.Select(BandName, query.CountRows(), query.CountOf(BandID).As("seats"))), `column "name" is neither grouped nor aggregated`},
		"ungrouped order":        {Bands.Select(BandName).GroupBy(BandName).OrderBy(BandPopularity.Asc()), `column "popularity" is neither grouped nor aggregated`},
		"aggregate in Where":     {Bands.Select(BandName).GroupBy(BandName).Where(query.CountRows().Gt(1)), "aggregate count(*) in Where"},
		"aggregate in GroupBy":   {Bands.Select(BandName).GroupBy(BandName, query.CountRows()), "count(*) where a column is needed"},
		"aggregate in a Delete":  {Bands.Delete().Where(query.CountRows().Gt(1)), "aggregate count(*) here"},
		"distinct rows":          {Bands.Select(BandName).GroupBy(BandName).Having(query.CountRows().Distinct().Gt(1)), "CountRows with Distinct"},
		"NULL compared":          {Bands.Select(BandName).GroupBy(BandName).Having(query.Max[*int64](BandManager).Eq(nil)), "Eq(NULL) on max"},
		"locked groups":          {Bands.Select(BandName).GroupBy(BandName).ForUpdate(), "FOR UPDATE with GROUP BY"},
		"aggregate into a table": {Bands.Select(query.CountRows()), "does not scan into query_test.Band"},
	} {
		_, err := tt.q.Querystrings()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v; want an error containing %q", name, err, tt.want)
		}
	}
}
