package query_test

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/query"
)

// sqlOf renders q's one statement, failing the test on an error.
func sqlOf(t *testing.T, q piccolo.Query) piccolo.Querystring {
	t.Helper()
	qs, err := q.Querystrings()
	if err != nil {
		t.Fatal(err)
	}
	return qs[0]
}

// TestJoinsFollowForeignKeysOnceWithStableAliases pins the joins along
// foreign keys: a NOT NULL key is an INNER JOIN, a nullable key (and any
// join after a LEFT JOIN) a LEFT JOIN, so rows without a referenced row
// stay; a join used in the select list, Where and OrderBy, even built
// twice, is rendered once under the alias that names its path; joined
// columns work only where a Select has them.
func TestJoinsFollowForeignKeysOnceWithStableAliases(t *testing.T) {
	t.Parallel()
	concert := TicketConcert.Join(Concerts)
	band := ConcertBand1.Via(concert).Join(Bands)
	manager := BandManager.Via(band).Join(Managers)
	again := BandManager.Via(ConcertBand1.Via(TicketConcert.Join(Concerts)).Join(Bands)).Join(Managers)
	type row struct {
		Seat    string
		Manager *string
	}
	q := sqlOf(t, query.Into[row](Tickets.Select(TicketSeat, ManagerName.Via(manager).As("manager")).
		Where(ManagerName.Via(again).Eq("Guido")).OrderBy(ManagerName.Via(manager).Asc())))
	for alias, want := range map[string]int{`AS "ticket.concert" `: 1, `AS "ticket.concert.band_1" `: 1, `AS "ticket.concert.band_1.manager" `: 1} {
		if got := strings.Count(q.SQL, alias); got != want {
			t.Errorf("%s appears %d times; want %d:\n%s", alias, got, want, q.SQL)
		}
	}
	if !strings.Contains(q.SQL, `FROM "ticket" JOIN "concert"`) || !strings.Contains(q.SQL, `LEFT JOIN "manager"`) || strings.Contains(q.SQL, `LEFT JOIN "band"`) {
		t.Errorf("join kinds:\n%s", q.SQL)
	}
	// After a LEFT JOIN, a NOT NULL key joins LEFT too.
	c := query.JoinTable(Concerts, "c")
	after := sqlOf(t, Bands.Select(BandName).Where(VenueName.Via(ConcertVenue.Via(c).Join(Venues)).Eq("x")).
		LeftJoinOn(query.JoinTable(Concerts, "c"), ConcertBand1.Via(c).EqCol(BandID)))
	if !strings.Contains(after.SQL, `LEFT JOIN "venue" AS "c.venue"`) {
		t.Errorf("a join after a LEFT JOIN:\n%s", after.SQL)
	}

	for name, q := range map[string]piccolo.Query{
		"joined column into the table's struct": Tickets.Select(TicketSeat, BandName.Via(band)),
		"joined column in an Update":            Bands.Update(BandName.Set("x")).Where(ManagerName.Via(BandManager.Join(Managers)).Eq("y")),
		"join from another table":               Bands.Select().Where(BandName.Via(band).Eq("x")),
		"Via on the wrong table":                Tickets.Select().Where(BandName.Via(concert).Eq("x")),
		"Join on a column that is no key":       Tickets.Select().Where(ConcertID.Via(TicketSeat.Join(Concerts)).Eq(1)),
		"Join to the wrong table":               Tickets.Select().Where(BandID.Via(TicketConcert.Join(Bands)).Eq(1)),
	} {
		if _, err := q.Querystrings(); err == nil {
			t.Errorf("%s rendered", name)
		}
	}

	ctx := context.Background()
	eng := newEngine(t)
	fillPlayground(t, eng)
	solo := &Band{Name: "Solo"}
	must(t, Bands.Insert(solo).Omit(BandFormed).Run(ctx, eng))
	type bandManager struct {
		Name    string
		Manager *string
	}
	got, err := query.Into[bandManager](Bands.Select(BandName, ManagerName.Via(BandManager.Join(Managers)).As("manager")).OrderBy(BandName.Asc())).All(ctx, eng)
	must(t, err)
	guido, graydon, mads := "Guido", "Graydon", "Mads"
	want := []bandManager{{"C-Sharps", &mads}, {"Pythonistas", &guido}, {"Rustaceans", &graydon}, {"Solo", nil}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("bands and managers (LEFT JOIN keeps Solo): %+v", got)
	}
	seats, err := query.Into[row](Tickets.Select(TicketSeat, ManagerName.Via(manager).As("manager")).
		Where(ManagerName.Via(again).Eq("Guido")).OrderBy(TicketSeat.Desc())).All(ctx, eng)
	must(t, err)
	if len(seats) != 2 || seats[0].Seat != "A2" || seats[1].Seat != "A1" || *seats[0].Manager != "Guido" {
		t.Errorf("Guido's tickets: %+v", seats)
	}
	tickets, err := Tickets.Select().Where(BandName.Via(band).Eq("Rustaceans")).All(ctx, eng)
	must(t, err)
	if len(tickets) != 1 || tickets[0].Seat != "B1" {
		t.Errorf("tickets of concerts whose first band is Rustaceans: %+v", tickets)
	}
}

// TestJoinOnJoinsOnConditionsOfYourOwn pins explicit joins: a JoinTable
// with its alias, INNER or LEFT, whose condition may compare columns of
// the statement's table and the joined one; values in it are bound.
func TestJoinOnJoinsOnConditionsOfYourOwn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	eng := newEngine(t)
	bands, _ := fillPlayground(t, eng)
	c := query.JoinTable(Concerts, "c")
	type played struct {
		Name  string
		Venue *int64
	}
	got, err := query.Into[played](Bands.Select(BandName, ConcertVenue.Via(c).As("venue")).
		LeftJoinOn(c, ConcertBand1.Via(c).EqCol(BandID), ConcertVenue.Via(c).Gt(0)).
		OrderBy(BandName.Asc())).All(ctx, eng)
	must(t, err)
	if len(got) != 3 || got[0].Name != "C-Sharps" || got[0].Venue != nil || got[1].Venue == nil {
		t.Errorf("bands LEFT JOIN their first-band concerts: %+v", got)
	}
	inner, err := Bands.Select(BandName).JoinOn(c, ConcertBand1.Via(c).EqCol(BandID)).OrderBy(BandName.Asc()).All(ctx, eng)
	must(t, err)
	if names := bandNames(inner); !slices.Equal(names, []string{"Pythonistas", "Rustaceans"}) {
		t.Errorf("bands JOIN concerts: %v", names)
	}
	// A foreign-key join from the explicit join's table.
	v := ConcertVenue.Via(c).Join(Venues)
	big, err := Bands.Select(BandName).JoinOn(c, ConcertBand1.Via(c).EqCol(BandID)).Where(VenueCapacity.Via(v).Gt(1000)).All(ctx, eng)
	must(t, err)
	if len(big) != 1 || big[0].Name != bands[0].Name {
		t.Errorf("bands at big venues: %+v", big)
	}
	if _, err := Bands.Select().Where(ConcertVenue.Via(c).Eq(1)).Querystrings(); err == nil || !strings.Contains(err.Error(), "not in this query") {
		t.Errorf("a JoinTable never joined: %v", err)
	}
}
