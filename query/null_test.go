package query_test

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"testing"

	"github.com/piccolo-go/piccolo/query"
)

// Gig has nullable columns of several kinds, and a pointer that is NOT
// NULL.
type Gig struct {
	ID   int64          `piccolo:"id,pk"`
	Fee  *int64         `piccolo:"fee"`
	Tags []string       `piccolo:"tags"`
	Note sql.NullString `piccolo:"note"`
	Rank *int32         `piccolo:"rank,notnull"`
}

var (
	Gigs    = query.MustTable[Gig]("gig")
	GigID   = query.C(Gigs, func(g *Gig) *int64 { return &g.ID })
	GigFee  = query.C(Gigs, func(g *Gig) **int64 { return &g.Fee })
	GigTags = query.C(Gigs, func(g *Gig) *[]string { return &g.Tags })
	GigNote = query.C(Gigs, func(g *Gig) *sql.NullString { return &g.Note })
	GigRank = query.C(Gigs, func(g *Gig) **int32 { return &g.Rank })
)

// TestNullValuesMeanNullOnARealServer pins what a value sent as NULL means
// in a condition, on rows holding NULL: Eq(nil) is IS NULL, Ne(nil) IS NOT
// NULL, In is Or(Eq(v)...), NotIn never matches a NULL column (NotIn() is
// IS NOT NULL), and a typed nil slice of values is an empty list.
func TestNullValuesMeanNullOnARealServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	eng := newEngine(t)
	must(t, query.Exec(ctx, eng, Gigs.Create()))
	one, two, rank := int64(1), int64(2), int32(1)
	must(t, Gigs.Insert(
		&Gig{Fee: &one, Tags: []string{"a"}, Note: sql.NullString{String: "x", Valid: true}, Rank: &rank},
		&Gig{Fee: &two, Tags: []string{"b"}, Note: sql.NullString{String: "y", Valid: true}, Rank: &rank},
		&Gig{Rank: &rank}, // fee, tags and note NULL
	).Run(ctx, eng))
	var noFees []*int64
	var noIDs []int64
	tests := []struct {
		name string
		expr query.Expr
		want []int64
	}{
		{"Eq(nil)", GigFee.Eq(nil), []int64{3}},
		{"Ne(nil)", GigFee.Ne(nil), []int64{1, 2}},
		{"Eq(value)", GigFee.Eq(&one), []int64{1}},
		{"Ne(value) leaves NULL out", GigFee.Ne(&one), []int64{2}},
		{"In(value, nil)", GigFee.In(&one, nil), []int64{1, 3}},
		{"In(nil)", GigFee.In(nil), []int64{3}},
		{"In()", GigFee.In(), nil},
		{"In(typed nil slice)", GigFee.In(noFees...), nil},
		{"NotIn()", GigFee.NotIn(), []int64{1, 2}},
		{"NotIn(typed nil slice)", GigFee.NotIn(noFees...), []int64{1, 2}},
		{"NotIn(value)", GigFee.NotIn(&one), []int64{2}},
		{"NotIn(value, nil)", GigFee.NotIn(&one, nil), []int64{2}},
		{"NotIn(nil)", GigFee.NotIn(nil), []int64{1, 2}},
		{"Not(NotIn())", query.Not(GigFee.NotIn()), []int64{3}},
		{"NOT NULL column In(typed nil slice)", GigID.In(noIDs...), nil},
		{"NOT NULL column NotIn(typed nil slice)", GigID.NotIn(noIDs...), []int64{1, 2, 3}},
		{"Eq(nil slice)", GigTags.Eq(nil), []int64{3}},
		{"Ne(nil slice)", GigTags.Ne(nil), []int64{1, 2}},
		{"Eq(invalid sql.Null)", GigNote.Eq(sql.NullString{}), []int64{3}},
		{"In(valid, invalid sql.Null)", GigNote.In(sql.NullString{String: "x", Valid: true}, sql.NullString{}), []int64{1, 3}},
		{"NotIn(valid, invalid sql.Null)", GigNote.NotIn(sql.NullString{String: "x", Valid: true}, sql.NullString{}), []int64{2}},
		{"Or of In(nil)", query.Or(GigFee.In(&two, nil), GigID.Eq(1)), []int64{1, 2, 3}},
	}
	for _, tt := range tests {
		rows, err := Gigs.Select(GigID).Where(tt.expr).OrderBy(GigID.Asc()).All(ctx, eng)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		var got []int64
		for _, r := range rows {
			got = append(got, r.ID)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s matched ids %v; want %v", tt.name, got, tt.want)
		}
	}
}

// TestNullValuesThatMatchNothingAreRefused pins the other half: a NULL
// value where it can only match no row (an ordering comparison, a Between
// bound, any comparison on a NOT NULL column, a GetOrCreate key) fails
// rendering, before any I/O, instead of silently matching nothing.
func TestNullValuesThatMatchNothingAreRefused(t *testing.T) {
	t.Parallel()
	one := int64(1)
	tests := []struct {
		name string
		expr query.Expr
		want string
	}{
		{"Lt", GigFee.Lt(nil), `Lt(NULL) on column "fee"`},
		{"Le", GigFee.Le(nil), `Le(NULL) on column "fee"`},
		{"Gt", GigFee.Gt(nil), `Gt(NULL) on column "fee"`},
		{"Ge", GigFee.Ge(nil), `Ge(NULL) on column "fee"`},
		{"Between low", GigFee.Between(nil, &one), `Between with a NULL bound on column "fee"`},
		{"Between high", GigFee.Between(&one, nil), `Between with a NULL bound`},
		{"Eq on NOT NULL", GigRank.Eq(nil), `Eq with a NULL value on column "rank", which is NOT NULL`},
		{"Ne on NOT NULL", GigRank.Ne(nil), `Ne with a NULL value on column "rank"`},
		{"In on NOT NULL", GigRank.In(nil), `In with a NULL value on column "rank"`},
		{"NotIn on NOT NULL", GigRank.NotIn(nil), `NotIn with a NULL value on column "rank"`},
	}
	for _, tt := range tests {
		err := renderErr(Gigs.Select().Where(tt.expr))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v; want an error containing %q", tt.name, err, tt.want)
		}
	}
	// A GetOrCreate whose key is NULL would find nothing and insert a new
	// row on every call (NULLs never conflict): refused too.
	if err := renderErr(Gigs.GetOrCreate(&Gig{}, GigNote)); err == nil || !strings.Contains(err.Error(), "the object's Note is NULL") {
		t.Errorf("GetOrCreate with an invalid sql.Null key: %v", err)
	}
	if err := renderErr(Gigs.Select().Where(GigRank.In(), GigRank.NotIn())); err != nil {
		t.Errorf("empty lists on a NOT NULL column: %v", err)
	}
}

func ExampleColumn_Eq() {
	// Manager is a *int64: nil is NULL, and = NULL would match no row.
	show(Bands.Select(BandName).Where(BandManager.Eq(nil)))
	show(Bands.Select(BandName).Where(BandManager.Ne(nil)))
	// Output:
	// SELECT "name" FROM "band" WHERE "manager" IS NULL
	// SELECT "name" FROM "band" WHERE "manager" IS NOT NULL
}

func ExampleColumn_In() {
	x := sql.NullString{String: "x", Valid: true}
	show(Gigs.Select(GigID).Where(GigNote.In(x, sql.NullString{}), GigID.Gt(0))) // an invalid sql.Null is NULL
	// Output:
	// SELECT "id" FROM "gig" WHERE ("note" = ANY($1) OR "note" IS NULL) AND "id" > $2
	// [{x true}] 0
}

func ExampleColumn_NotIn() {
	x := sql.NullString{String: "x", Valid: true}
	show(Gigs.Select(GigID).Where(GigNote.NotIn())) // no values: every row whose column is not NULL
	show(Gigs.Select(GigID).Where(GigNote.NotIn(x, sql.NullString{})))
	// Output:
	// SELECT "id" FROM "gig" WHERE "note" IS NOT NULL
	// SELECT "id" FROM "gig" WHERE "note" <> ALL($1)
	// [{x true}]
}

func ExampleOr() {
	show(Bands.Select(BandName).Where(query.Or()))    // no alternative: matches nothing
	show(Bands.Select(BandName).Where(query.And()))   // no requirement: matches everything
	show(Bands.Delete().Where(query.Or(query.And()))) // matches every row: no condition
	show(Bands.Delete().Where(query.Or(query.And())).All())
	// Output:
	// SELECT "name" FROM "band" WHERE FALSE
	// SELECT "name" FROM "band" WHERE TRUE
	// error: query: Delete from "band": no Where condition; call All() to change every row
	// DELETE FROM "band" WHERE TRUE
}
