package query_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/query"
)

// TestGetOrCreateKeyMustBeUniqueBeforeSending pins that GetOrCreate and
// an ON CONFLICT target accept only a unique key the table declares (the
// primary key, a column tagged unique, a key given to query.Unique, in any
// order) and refuse any other before anything is sent, with an error that
// says how to declare a unique index the table cannot see. A key declared
// with Unique is created by Create and works on the server.
func TestGetOrCreateKeyMustBeUniqueBeforeSending(t *testing.T) {
	t.Parallel()
	type gig struct {
		ID    int64  `piccolo:"id,pk"`
		Code  string `piccolo:"code,unique"`
		Band  string `piccolo:"band"`
		Venue string `piccolo:"venue"`
		Night string `piccolo:"night"`
	}
	gigs := query.MustTable[gig]("gig", query.Unique("band", "night"))
	id := query.C(gigs, func(g *gig) *int64 { return &g.ID })
	code := query.C(gigs, func(g *gig) *string { return &g.Code })
	band := query.C(gigs, func(g *gig) *string { return &g.Band })
	venue := query.C(gigs, func(g *gig) *string { return &g.Venue })
	night := query.C(gigs, func(g *gig) *string { return &g.Night })
	row := &gig{ID: 1, Code: "c", Band: "b", Venue: "v", Night: "n"}

	for _, tt := range []struct {
		name string
		key  []query.Col
		ok   bool
	}{
		{"primary key", []query.Col{id}, true},
		{"unique tag", []query.Col{code}, true},
		{"declared key", []query.Col{band, night}, true},
		{"declared key in another order", []query.Col{night, band}, true},
		{"plain column", []query.Col{venue}, false},
		{"part of a declared key", []query.Col{band}, false},
		{"a unique column and more", []query.Col{code, venue}, false},
		{"declared key and more", []query.Col{band, night, venue}, false},
	} {
		_, err := gigs.GetOrCreate(row, tt.key...).Querystrings()
		_, errIns := gigs.Insert(row).OnConflictDoNothing(tt.key...).Querystrings()
		_, errUpd := gigs.Insert(row).OnConflictDoUpdate(tt.key, code).Querystrings()
		for what, err := range map[string]error{"GetOrCreate": err, "OnConflictDoNothing": errIns, "OnConflictDoUpdate": errUpd} {
			switch {
			case tt.ok && err != nil:
				t.Errorf("%s, %s: %v; want it accepted", tt.name, what, err)
			case !tt.ok && (err == nil || !strings.Contains(err.Error(), "a key declared with query.Unique")):
				t.Errorf("%s, %s: %v; want a refusal naming query.Unique", tt.name, what, err)
			}
		}
	}
	_, err := gigs.GetOrCreate(row, venue).Querystrings()
	if want := `query: GetOrCreate in "gig": the key ("venue") is not the primary key`; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("refusal reads %q; want it to start %q", err, want)
	}
	if _, err := query.NewTable[gig]("gig", query.Unique("band", "nope")); err == nil || !strings.Contains(err.Error(), `no column "nope"`) {
		t.Errorf("Unique with an unknown column: %v", err)
	}

	ctx := context.Background()
	eng := newEngine(t)
	must(t, query.Exec(ctx, eng, gigs.Create()))
	for i, want := range []bool{true, false} {
		g := &gig{ID: int64(10 + i), Code: "c" + string(rune('0'+i)), Band: "b", Night: "n", Venue: "v"}
		q := gigs.GetOrCreate(g, band, night)
		must(t, q.Run(ctx, eng))
		if q.Created() != want || g.ID != 10 {
			t.Errorf("run %d: created %v, id %d; want %v, 10", i, q.Created(), g.ID, want)
		}
	}
	// The server agrees: a key the table does not declare is 42P10 there.
	_, err = eng.Exec(ctx, piccolo.Querystring{SQL: `INSERT INTO gig (id, code, band, venue, night) VALUES (3, 'x', 'b', 'v', 'n') ON CONFLICT (venue) DO NOTHING`})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42P10" {
		t.Errorf("the server on an undeclared key: %v; want 42P10", err)
	}
}
