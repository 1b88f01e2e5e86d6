package query_test

import (
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/piccolo-go/piccolo/query"
)

var (
	ConcertID    = query.C(Concerts, func(c *Concert) *int64 { return &c.ID })
	ConcertBand1 = query.C(Concerts, func(c *Concert) *int64 { return &c.Band1 })
	ConcertBand2 = query.C(Concerts, func(c *Concert) *int64 { return &c.Band2 })
	TicketPrice  = query.C(Tickets, func(t *Ticket) *pgtype.Numeric { return &t.Price })
)

// A ticket's concert, its first band and that band's manager: each join
// once, with aliases that name the path of foreign keys.
func ExampleColumn_Join() {
	concert := TicketConcert.Join(Concerts)         // NOT NULL: JOIN
	band := ConcertBand1.Via(concert).Join(Bands)   // NOT NULL: JOIN
	manager := BandManager.Via(band).Join(Managers) // nullable: LEFT JOIN
	show(Tickets.Select().
		Where(BandName.Via(band).Eq("Pythonistas"), ManagerName.Via(manager).Ne("Guido")).
		OrderBy(BandName.Via(band).Asc(), TicketSeat.Asc()))
	// Output:
	// SELECT "ticket"."id", "ticket"."concert", "ticket"."price", "ticket"."seat" FROM "ticket" JOIN "concert" AS "ticket.concert" ON "ticket.concert"."id" = "ticket"."concert" JOIN "band" AS "ticket.concert.band_1" ON "ticket.concert.band_1"."id" = "ticket.concert"."band_1" LEFT JOIN "manager" AS "ticket.concert.band_1.manager" ON "ticket.concert.band_1.manager"."id" = "ticket.concert.band_1"."manager" WHERE "ticket.concert.band_1"."name" = $1 AND "ticket.concert.band_1.manager"."name" <> $2 ORDER BY "ticket.concert.band_1"."name" ASC, "ticket"."seat" ASC
	// Pythonistas Guido
}

type TicketRow struct {
	Seat    string
	Band    string  `piccolo:"band"`
	Manager *string `piccolo:"manager"`
}

func ExampleInto() {
	concert := TicketConcert.Join(Concerts)
	band := ConcertBand1.Via(concert).Join(Bands)
	manager := BandManager.Via(band).Join(Managers)
	show(query.Into[TicketRow](Tickets.Select(TicketSeat, BandName.Via(band).As("band"), ManagerName.Via(manager).As("manager")).
		Where(ConcertVenue.Via(concert).Eq(1))))
	// Output:
	// SELECT "ticket"."seat", "ticket.concert.band_1"."name" AS "band", "ticket.concert.band_1.manager"."name" AS "manager" FROM "ticket" JOIN "concert" AS "ticket.concert" ON "ticket.concert"."id" = "ticket"."concert" JOIN "band" AS "ticket.concert.band_1" ON "ticket.concert.band_1"."id" = "ticket.concert"."band_1" LEFT JOIN "manager" AS "ticket.concert.band_1.manager" ON "ticket.concert.band_1.manager"."id" = "ticket.concert.band_1"."manager" WHERE "ticket.concert"."venue" = $1
	// 1
}

type BandStats struct {
	Band    string `piccolo:"name"`
	Tickets int64  `piccolo:"count"`
	Seats   int64  `piccolo:"seats"`
}

func ExampleCountRows() {
	concert := TicketConcert.Join(Concerts)
	band := ConcertBand1.Via(concert).Join(Bands)
	show(query.Into[BandStats](Tickets.Select(BandName.Via(band), query.CountRows(), query.CountOf(TicketSeat).Distinct().As("seats")).
		GroupBy(BandName.Via(band)).
		Having(query.CountRows().Ge(2)).
		OrderBy(query.CountRows().Desc())))
	// Output:
	// SELECT "ticket.concert.band_1"."name", count(*), count(DISTINCT "ticket"."seat") AS "seats" FROM "ticket" JOIN "concert" AS "ticket.concert" ON "ticket.concert"."id" = "ticket"."concert" JOIN "band" AS "ticket.concert.band_1" ON "ticket.concert.band_1"."id" = "ticket.concert"."band_1" GROUP BY "ticket.concert.band_1"."name" HAVING count(*) >= $1 ORDER BY count(*) DESC
	// 2
}

func ExampleExistsSubquery() {
	show(Bands.Select(BandName).Where(
		query.ExistsSubquery(Concerts.Select(ConcertID).Where(ConcertBand1.EqCol(BandID))),
		BandID.InSubquery(Concerts.Select(ConcertBand1).Where(ConcertVenue.Eq(3))),
	))
	// Output:
	// SELECT "name" FROM "band" WHERE EXISTS (SELECT "concert"."id" FROM "concert" WHERE "concert"."band_1" = "band"."id") AND "id" IN (SELECT "concert"."band_1" FROM "concert" WHERE "concert"."venue" = $1)
	// 3
}

type BandConcerts struct {
	Name     string
	Concerts *int64
}

func ExampleScalar() {
	show(query.Into[BandConcerts](Bands.Select(BandName,
		query.Scalar[*int64](Concerts.Select(query.CountRows()).Where(ConcertBand1.EqCol(BandID))).As("concerts"))))
	// Output:
	// SELECT "name", (SELECT count(*) FROM "concert" WHERE "concert"."band_1" = "band"."id") AS "concerts" FROM "band"
}

func ExampleSelect_JoinOn() {
	v := query.JoinTable(Venues, "v")
	show(Bands.Select(BandName).JoinOn(v, VenueName.Via(v).EqCol(BandName)).Where(VenueCapacity.Via(v).Gt(100)))
	// Output:
	// SELECT "band"."name" FROM "band" JOIN "venue" AS "v" ON "v"."name" = "band"."name" WHERE "v"."capacity" > $1
	// 100
}
