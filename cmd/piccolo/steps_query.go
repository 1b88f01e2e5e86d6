package main

import (
	"context"
	"fmt"
	"reflect"

	"github.com/piccolo-go/piccolo/query"
)

// The columns the join and aggregate steps follow and group by.
var (
	ManagerName   = query.C(Managers, func(m *Manager) *string { return &m.Name })
	BandManager   = query.C(Bands, func(b *Band) **int64 { return &b.Manager })
	ConcertBand1  = query.C(Concerts, func(c *Concert) *int64 { return &c.Band1 })
	ConcertVenue  = query.C(Concerts, func(c *Concert) *int64 { return &c.Venue })
	TicketConcert = query.C(Tickets, func(t *Ticket) *int64 { return &t.Concert })
)

// ticketRow is a ticket with what the joins find for it.
type ticketRow struct {
	Ticket  int64   `piccolo:"id"`
	Band    string  `piccolo:"band"`
	Manager *string `piccolo:"manager"` // a LEFT JOIN: a band may have none
	Venue   string  `piccolo:"venue"`
	Price   string  `piccolo:"price"`
}

// stepJoin projects each ticket with its concert's first band, that band's
// manager and the venue: four joins along foreign keys, into a struct of
// the tour's own.
func stepJoin(ctx context.Context, t *tour) (string, error) {
	concert := TicketConcert.Join(Concerts)
	band := ConcertBand1.Via(concert).Join(Bands)
	manager := BandManager.Via(band).Join(Managers)
	venue := ConcertVenue.Via(concert).Join(Venues)
	rows, err := query.Into[ticketRow](Tickets.Select(TicketID, BandName.Via(band).As("band"),
		ManagerName.Via(manager).As("manager"), VenueName.Via(venue).As("venue"), TicketPrice).
		OrderBy(TicketID.Asc())).All(ctx, t.engine)
	t.sql.flush()
	if err != nil {
		return "", err
	}
	writeTable(t.out, rowsTable([]string{"ticket", "band", "manager", "venue", "price"}, rows), t.st)
	var got []string
	for _, r := range rows {
		m := "NULL"
		if r.Manager != nil {
			m = *r.Manager
		}
		got = append(got, r.Band+"/"+m+"/"+r.Venue)
	}
	want := []string{"Pythonistas/Guido/Amazing Venue", "Pythonistas/Guido/Amazing Venue", "Rustaceans/Graydon/Small Venue"}
	if !reflect.DeepEqual(got, want) {
		return "", fmt.Errorf("tickets joined to %v, want %v", got, want)
	}
	return "3 tickets → concert → band → manager, and concert → venue: 4 joins, each once, the nullable manager a LEFT JOIN", nil
}

// venueRow is one group of the aggregate step.
type venueRow struct {
	Venue    string `piccolo:"venue"`
	Tickets  int64  `piccolo:"tickets"`
	Concerts int64  `piccolo:"concerts"`
	Cheapest string `piccolo:"cheapest"`
}

// stepAggregate counts tickets and concerts per venue: GROUP BY a joined
// column, count(*), count(DISTINCT ...), min, HAVING and ORDER BY an
// aggregate.
func stepAggregate(ctx context.Context, t *tour) (string, error) {
	concert := TicketConcert.Join(Concerts)
	venue := VenueName.Via(ConcertVenue.Via(concert).Join(Venues))
	rows, err := query.Into[venueRow](Tickets.Select(venue.As("venue"), query.CountRows().As("tickets"),
		query.CountOf(ConcertID.Via(concert)).Distinct().As("concerts"), query.Min(TicketPrice).As("cheapest")).
		GroupBy(venue).
		Having(query.CountRows().Ge(1)).
		OrderBy(query.CountRows().Desc())).All(ctx, t.engine)
	t.sql.flush()
	if err != nil {
		return "", err
	}
	writeTable(t.out, rowsTable([]string{"venue", "tickets", "concerts", "cheapest"}, rows), t.st)
	want := []venueRow{{"Amazing Venue", 2, 1, "50.00"}, {"Small Venue", 1, 1, "25.50"}}
	if !reflect.DeepEqual(rows, want) {
		return "", fmt.Errorf("per venue %+v, want %+v", rows, want)
	}
	return "2 venues: tickets counted, concerts counted distinct, the cheapest price, busiest first", nil
}
