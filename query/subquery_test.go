package query_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/query"
)

// TestSubqueriesBindTheirValuesWithTheStatement pins subqueries: In,
// NotIn, Exists (correlated through EqCol) and a scalar subquery in a
// projection, with every value of the subquery bound among the enclosing
// statement's ($n numbered in one sequence), in a Select, a Count and a
// Delete; a subquery compared with a value must select one item.
func TestSubqueriesBindTheirValuesWithTheStatement(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	eng := newEngine(t)
	bands, concerts := fillPlayground(t, eng)

	atAmazing := Concerts.Select(ConcertBand1).Where(ConcertVenue.Eq(concerts[0].Venue))
	q := Bands.Select(BandName).Where(BandPopularity.Gt(5), BandID.InSubquery(atAmazing.Limit(5)), BandName.Ne("x"))
	s := sqlOf(t, q)
	if len(s.Args) != 4 || !strings.Contains(s.SQL, `"concert"."venue" = $2`) || !strings.Contains(s.SQL, `LIMIT $3)`) || !strings.Contains(s.SQL, `"name" <> $4`) {
		t.Errorf("values numbered in one sequence:\n%s\n%v", s.SQL, s.Args)
	}
	in, err := q.All(ctx, eng)
	if names := bandNames(in); err != nil || !slices.Equal(names, []string{"Pythonistas"}) {
		t.Errorf("In(subquery) = %v, %v", names, err)
	}
	notIn, err := Bands.Select(BandName).Where(BandID.NotInSubquery(atAmazing)).OrderBy(BandName.Asc()).All(ctx, eng)
	if names := bandNames(notIn); err != nil || !slices.Equal(names, []string{"C-Sharps", "Rustaceans"}) {
		t.Errorf("NotIn(subquery) = %v, %v", names, err)
	}
	playsFirst := Concerts.Select(ConcertID).Where(ConcertBand1.EqCol(BandID))
	exists, err := Bands.Select(BandName).Where(query.ExistsSubquery(playsFirst)).OrderBy(BandName.Asc()).All(ctx, eng)
	if names := bandNames(exists); err != nil || !slices.Equal(names, []string{"Pythonistas", "Rustaceans"}) {
		t.Errorf("Exists(subquery) = %v, %v", names, err)
	}
	n, err := Bands.Count().Where(query.NotExistsSubquery(playsFirst)).Run(ctx, eng)
	if err != nil || n != 1 {
		t.Errorf("Count where NotExists(subquery) = %d, %v; want 1", n, err)
	}

	type withConcerts struct {
		Name     string
		Concerts int64 `piccolo:"concerts"`
		Tickets  *int64
	}
	tickets := Tickets.Select(query.CountRows()).Where(TicketConcert.InSubquery(Concerts.Select(ConcertID).Where(ConcertBand1.EqCol(BandID))))
	got, err := query.Into[withConcerts](Bands.Select(BandName,
		query.Scalar[int64](Concerts.Select(query.CountRows()).Where(query.Or(ConcertBand1.EqCol(BandID), ConcertBand2.EqCol(BandID)))).As("concerts"),
		query.Scalar[*int64](tickets).As("tickets"),
	).OrderBy(BandName.Asc())).All(ctx, eng)
	must(t, err)
	var summary []string
	for _, r := range got {
		summary = append(summary, fmt.Sprintf("%s:%d/%d", r.Name, r.Concerts, *r.Tickets))
	}
	if want := "C-Sharps:1/0 Pythonistas:1/2 Rustaceans:2/1"; strings.Join(summary, " ") != want {
		t.Errorf("scalar subqueries: %v; want %s", summary, want)
	}

	gone, err := Tickets.Delete().Where(TicketConcert.InSubquery(Concerts.Select(ConcertID).Where(ConcertBand1.Eq(bands[1].ID)))).Run(ctx, eng)
	if err != nil || gone != 1 {
		t.Errorf("Delete where In(subquery) = %d, %v; want 1", gone, err)
	}

	for name, tt := range map[string]struct {
		q    piccolo.Query
		want string
	}{
		"In a subquery of every column": {Bands.Select().Where(BandID.InSubquery(Concerts.Select())), "must select one item"},
		"In a subquery of two columns":  {Bands.Select().Where(BandID.InSubquery(Concerts.Select(ConcertID, ConcertBand1))), "must select one item"},
		"a bad subquery":                {Bands.Select().Where(query.ExistsSubquery(Concerts.Select().Limit(-1))), `subquery on "concert": negative Limit`},
		"nil subquery":                  {Bands.Select().Where(query.ExistsSubquery(nil)), "nil subquery"},
	} {
		_, err := tt.q.Querystrings()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v; want an error containing %q", name, err, tt.want)
		}
	}
}
