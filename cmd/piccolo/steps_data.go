package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/query"
)

// stepCreateSchema creates the schema in one Atomic and expects the five
// tables, in the playground's schema, with their foreign keys.
func stepCreateSchema(ctx context.Context, t *tour) (string, error) {
	// A leftover of an earlier run that could not clean up (a crash) would
	// make CREATE SCHEMA fail: the schema is the playground's own.
	if err := t.engine.RunDDL(ctx, dropSchemaSQL); err != nil {
		return "", err
	}
	if err := t.engine.Atomic().Add(schemaQueries()...).Run(ctx); err != nil {
		return "", err
	}
	// The catalog is raw SQL: the query layer reads tables, not pg_catalog.
	res, err := t.show(ctx, `SELECT c.relname AS "table", count(con.oid) AS foreign_keys
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_constraint con ON con.conrelid = c.oid AND con.contype = 'f'
		WHERE n.nspname = $1 AND c.relkind = 'r' GROUP BY c.oid, c.relname ORDER BY c.oid`, playgroundSchema)
	if err != nil {
		return "", err
	}
	var names []string
	fks := 0
	for _, row := range res.rows {
		names = append(names, row[0])
		var n int
		if _, err := fmt.Sscan(row[1], &n); err != nil {
			return "", fmt.Errorf("foreign key count %q: %w", row[1], err)
		}
		fks += n
	}
	if want := playgroundTables(); !slices.Equal(names, want) {
		return "", fmt.Errorf("tables in schema %s: %v, want %v", playgroundSchema, names, want)
	}
	if fks != 5 {
		return "", fmt.Errorf("%d foreign keys, want 5", fks)
	}
	return "5 tables with 5 foreign keys in schema " + playgroundSchema + ", created in one transaction", nil
}

// fillPlayground inserts Piccolo's playground data: three managers, three
// bands, two venues, two concerts and three tickets. Each Insert writes the
// ids the database assigned back into its rows, which the rows inserted
// after them point at.
func fillPlayground(ctx context.Context, e piccolo.Engine) error {
	guido, graydon, mads := &Manager{Name: "Guido"}, &Manager{Name: "Graydon"}, &Manager{Name: "Mads"}
	if err := Managers.Insert(guido, graydon, mads).Run(ctx, e); err != nil {
		return err
	}
	pythonistas := &Band{Name: "Pythonistas", Manager: &guido.ID, Popularity: 1000}
	rustaceans := &Band{Name: "Rustaceans", Manager: &graydon.ID, Popularity: 2000}
	cSharps := &Band{Name: "C-Sharps", Manager: &mads.ID, Popularity: 10}
	if err := Bands.Insert(pythonistas, rustaceans, cSharps).Run(ctx, e); err != nil {
		return err
	}
	amazing, small := &Venue{Name: "Amazing Venue", Capacity: 5000}, &Venue{Name: "Small Venue", Capacity: 100}
	if err := Venues.Insert(amazing, small).Run(ctx, e); err != nil {
		return err
	}
	first := &Concert{Band1: pythonistas.ID, Band2: rustaceans.ID, Venue: amazing.ID,
		Starts: time.Date(2025, 6, 1, 19, 0, 0, 0, time.UTC), Duration: 4 * time.Hour}
	second := &Concert{Band1: rustaceans.ID, Band2: cSharps.ID, Venue: small.ID,
		Starts: time.Date(2025, 7, 14, 20, 30, 0, 0, time.UTC), Duration: 3 * time.Hour}
	if err := Concerts.Insert(first, second).Run(ctx, e); err != nil {
		return err
	}
	return Tickets.Insert(
		&Ticket{Concert: first.ID, Price: "50.00"},
		&Ticket{Concert: first.ID, Price: "50.00"},
		&Ticket{Concert: second.ID, Price: "25.50"},
	).Run(ctx, e)
}

// stepFill fills the playground in one transaction and expects every row.
func stepFill(ctx context.Context, t *tour) (string, error) {
	if err := t.engine.Transaction(ctx, func(ctx context.Context) error { return fillPlayground(ctx, t.engine) }); err != nil {
		return "", err
	}
	if _, err := selectRows(ctx, t, Bands, Bands.Select().OrderBy(BandID.Asc())); err != nil {
		return "", err
	}
	if _, err := selectRows(ctx, t, Concerts, Concerts.Select().OrderBy(ConcertID.Asc())); err != nil {
		return "", err
	}
	if _, err := selectRows(ctx, t, Tickets, Tickets.Select().OrderBy(TicketID.Asc())); err != nil {
		return "", err
	}
	counts := []struct {
		table string
		count query.Count
		want  int64
	}{
		{Managers.Name(), Managers.Count(), 3},
		{Bands.Name(), Bands.Count(), 3},
		{Venues.Name(), Venues.Count(), 2},
		{Concerts.Name(), Concerts.Count(), 2},
		{Tickets.Name(), Tickets.Count(), 3},
	}
	res := &resultTable{columns: []resultColumn{{name: "table"}, {name: "rows", numeric: true}}}
	var wrong []string
	for _, c := range counts {
		n, err := c.count.Run(ctx, t.engine)
		if err != nil {
			return "", err
		}
		res.rows = append(res.rows, []string{c.table, fmt.Sprint(n)})
		if n != c.want {
			wrong = append(wrong, fmt.Sprintf("%d rows in %s, want %d", n, c.table, c.want))
		}
	}
	t.sql.flush()
	writeTable(t.out, res, t.st)
	if len(wrong) > 0 {
		return "", errors.New(strings.Join(wrong, "; "))
	}
	return "5 Inserts in one transaction, ids written back: 3 managers, 3 bands, 2 venues, 2 concerts, 3 tickets", nil
}
