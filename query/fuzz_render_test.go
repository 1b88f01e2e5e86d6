package query_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/pgtest"
	"github.com/piccolo-go/piccolo/query"
)

// fuzzRow is the table FuzzRender builds queries on: several types, a
// nullable column, an array and a hostile column name.
type fuzzRow struct {
	ID      int64    `piccolo:"id,pk"`
	Name    string   `piccolo:"name,unique"`
	N       int32    `piccolo:"n"`
	Score   *float64 `piccolo:"score"`
	Tags    []string `piccolo:"tags"`
	Hostile string   `piccolo:"x\"; DROP TABLE y; --"`
	Parent  *int64   `piccolo:"parent,fk=fuzz \"parent\""`
}

var (
	fuzzTable   = query.MustTable[fuzzRow]("fuzz \"render\" $1")
	fuzzID      = query.C(fuzzTable, func(r *fuzzRow) *int64 { return &r.ID })
	fuzzName    = query.C(fuzzTable, func(r *fuzzRow) *string { return &r.Name })
	fuzzN       = query.C(fuzzTable, func(r *fuzzRow) *int32 { return &r.N })
	fuzzScore   = query.C(fuzzTable, func(r *fuzzRow) **float64 { return &r.Score })
	fuzzTags    = query.C(fuzzTable, func(r *fuzzRow) *[]string { return &r.Tags })
	fuzzHostile = query.C(fuzzTable, func(r *fuzzRow) *string { return &r.Hostile })
	// fuzzParentRef is the foreign key FuzzRender joins along.
	fuzzParentRef = query.C(fuzzTable, func(r *fuzzRow) **int64 { return &r.Parent })
	fuzzCols      = []query.Col{fuzzID, fuzzName, fuzzN, fuzzScore, fuzzTags, fuzzHostile}
)

// fuzzFragments are query.SQL escape hatches with placeholders in awkward
// places: string literals, quoted identifiers, dollar quotes, casts.
var fuzzFragments = []struct {
	sql  string
	args int
}{
	{ft + `."n" > $1`, 1},
	{`lower(` + ft + `."name") = lower($1)`, 1},
	{`'$1' <> $1::text`, 1},
	{ft + `."id" = $2 OR ` + ft + `."id" = $1`, 2},
	{`$$ $1 $$ <> $1::text`, 1},
	{`E'\'$1' <> $1`, 1},
	{ft + `."x""; DROP TABLE y; --" = $1`, 1},
	{`/* $1 */ ` + ft + `."n" = $1::int`, 1},
	{`TRUE`, 0},
}

// ft is the fuzz table's quoted name: fragments qualify their columns, as
// a query with joins needs (a $1 inside it is no placeholder).
const ft = `"fuzz ""render"" $1"`

// fuzzGen turns fuzz bytes into choices; past the end every choice is 0.
type fuzzGen struct{ data []byte }

func (g *fuzzGen) byte() byte {
	if len(g.data) == 0 {
		return 0
	}
	b := g.data[0]
	g.data = g.data[1:]
	return b
}

func (g *fuzzGen) intn(n int) int { return int(g.byte()) % n }

func (g *fuzzGen) str() string {
	n := g.intn(6)
	b := make([]byte, 0, n)
	for range n {
		b = append(b, g.byte())
	}
	return string(b)
}

func (g *fuzzGen) expr(depth int) query.Expr {
	kinds := 23
	if depth >= 3 {
		kinds = 17 // leaves only
	}
	switch g.intn(kinds) {
	case 0:
		return fuzzID.Eq(int64(g.byte()))
	case 1:
		return fuzzName.Ne(g.str())
	case 2:
		return fuzzN.Lt(int32(g.byte()) - 128)
	case 3:
		return fuzzN.Between(int32(g.byte()), int32(g.byte()))
	case 4:
		return fuzzScore.IsNull()
	case 5:
		return fuzzName.Like(g.str())
	case 6:
		ids := make([]int64, g.intn(4))
		for i := range ids {
			ids[i] = int64(g.byte())
		}
		return fuzzID.In(ids...)
	case 7:
		return fuzzN.NotIn(int32(g.byte()))
	case 8:
		f := fuzzFragments[g.intn(len(fuzzFragments))]
		args := make([]any, f.args)
		for i := range args {
			args[i] = g.str()
		}
		if strings.Contains(f.sql, `."id" = $2`) || strings.HasPrefix(f.sql, `/* $1 */`) {
			for i := range args {
				args[i] = int64(g.byte())
			}
		}
		return query.SQL(f.sql, args...)
	case 9:
		v := float64(g.byte()) / 3
		return fuzzScore.Eq(&v)
	case 10:
		return fuzzTags.Eq([]string{g.str(), g.str()})
	case 11:
		return fuzzHostile.Ge(g.str())
	case 12:
		if g.intn(2) == 1 {
			return fuzzScore.Ne(nil)
		}
		return fuzzScore.Eq(nil)
	case 13:
		return fuzzScore.In(g.scores()...)
	case 14:
		return fuzzScore.NotIn(g.scores()...)
	case 15:
		if g.intn(2) == 1 {
			return fuzzTags.Ne(nil)
		}
		return fuzzTags.Eq([]string(nil))
	case 16:
		var none []int32 // a typed nil list
		if g.intn(2) == 1 {
			return fuzzN.In(none...)
		}
		return fuzzN.NotIn(none...)
	case 17, 18:
		return query.And(g.exprs(depth)...)
	case 19:
		return query.Or(g.exprs(depth)...)
	case 20:
		return query.Not(g.expr(depth + 1))
	default: // joins and subqueries, which nest
		return g.joinExpr(depth + 1)
	}
}

// scores is a list of up to three values for the nullable column, some of
// them nil.
func (g *fuzzGen) scores() []*float64 {
	out := make([]*float64, g.intn(4))
	for i := range out {
		if b := g.byte(); b%2 == 1 {
			v := float64(b)
			out[i] = &v
		}
	}
	return out
}

func (g *fuzzGen) exprs(depth int) []query.Expr {
	out := make([]query.Expr, g.intn(4))
	for i := range out {
		out[i] = g.expr(depth + 1)
	}
	return out
}

func (g *fuzzGen) cols() []query.Col {
	var out []query.Col
	for _, c := range fuzzCols {
		if g.intn(2) == 1 {
			out = append(out, c)
		}
	}
	return out
}

func (g *fuzzGen) row() *fuzzRow {
	r := &fuzzRow{Name: g.str(), N: int32(g.byte()), Tags: []string{g.str()}, Hostile: g.str()}
	if g.intn(2) == 1 {
		v := float64(g.byte())
		r.Score = &v
	}
	if g.intn(4) == 1 {
		p := int64(g.byte())
		r.Parent = &p
	}
	return r
}

// query builds one random builder tree.
func (g *fuzzGen) query() piccolo.Query {
	switch g.intn(7) {
	case 6:
		return g.projection()
	case 0:
		s := fuzzTable.Select(g.cols()...).Where(g.exprs(0)...)
		if g.intn(2) == 1 {
			s = s.OrderBy(fuzzN.Desc(), fuzzID.Asc())
		}
		if g.intn(2) == 1 {
			s = s.Limit(g.intn(10))
		}
		if g.intn(2) == 1 {
			s = s.Offset(g.intn(10))
		}
		switch g.intn(4) {
		case 1:
			s = s.Distinct()
		case 2:
			s = s.ForUpdate()
		case 3:
			s = s.ForShare().SkipLocked()
		}
		return s
	case 1:
		return fuzzTable.Count().Where(g.exprs(0)...)
	case 2:
		return fuzzTable.Exists().Where(g.exprs(0)...)
	case 3:
		u := fuzzTable.Update(fuzzN.Set(int32(g.byte())), fuzzName.Set(g.str())).Where(g.exprs(0)...)
		if g.intn(2) == 1 {
			u = u.All()
		}
		if g.intn(2) == 1 {
			u = u.Returning(g.cols()...)
		}
		return u
	case 4:
		d := fuzzTable.Delete().Where(g.exprs(0)...)
		if g.intn(2) == 1 {
			d = d.Returning(fuzzID)
		}
		return d
	default:
		rows := make([]*fuzzRow, 1+g.intn(3))
		for i := range rows {
			rows[i] = g.row()
		}
		ins := fuzzTable.Insert(rows...)
		switch g.intn(3) {
		case 1:
			ins = ins.OnConflictDoNothing(fuzzName)
		case 2:
			ins = ins.OnConflictDoUpdate([]query.Col{fuzzName}, fuzzN)
		}
		return ins
	}
}

// FuzzRender renders random builder trees and checks every statement on a
// real server: it must PREPARE, with exactly as many parameters as
// arguments, and run (in a transaction rolled back) with them, failing at
// most on the data: 21 (an upsert meeting its own row twice), 22 (invalid
// UTF-8 from the fuzzer), 23 (a unique violation).
func FuzzRender(f *testing.F) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.DSN(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = conn.Close(context.Background()) })
	var create []piccolo.Querystring
	for _, t := range []piccolo.Query{fuzzParents.Create().IfNotExists(), fuzzTable.Create().IfNotExists()} {
		qs, err := t.Querystrings()
		if err != nil {
			f.Fatal(err)
		}
		create = append(create, qs...)
	}
	for _, q := range create {
		if _, err := conn.Exec(ctx, q.SQL, q.Args...); err != nil {
			f.Fatalf("%s: %v", q.SQL, err)
		}
	}
	for _, seed := range [][]byte{
		{}, {0, 1, 2, 3}, {0, 12, 8, 3, 14, 8, 6, 1, 1}, {3, 2, 12, 8, 2, 1, 1, 1}, {5, 2, 1, 9, 9, 1},
		[]byte("select where and or not"), {0, 15, 15, 15, 12, 12, 8, 4, 0, 1, 1, 1, 1, 1, 2, 3},
		{3, 1, 1, 19, 1, 17, 0}, {4, 2, 13, 3, 1, 0, 3, 14, 2, 0, 1, 12, 1, 15, 0, 16, 1},
		// joins, subqueries, projections and aggregates
		{0, 1, 21, 0, 21, 4, 1, 2}, {1, 2, 22, 3, 0, 1, 22, 6, 3}, {6, 0, 1, 2, 21, 7, 1}, {6, 1, 1, 1, 2, 1, 1, 1},
		{6, 1, 3, 0, 3, 1, 1, 1}, {4, 1, 21, 4, 2}, {3, 1, 22, 5},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g := &fuzzGen{data: data}
		q := g.query()
		qs, err := q.Querystrings()
		if err != nil {
			return // refusing to render is fine; panicking or bad SQL is not
		}
		for _, s := range qs {
			sd, err := conn.Prepare(ctx, "", s.SQL)
			var pgErr *pgconn.PgError
			if err != nil {
				t.Fatalf("rendered SQL does not prepare: %v\n%s\nargs %q", err, s.SQL, s.Args)
			}
			if len(sd.ParamOIDs) != len(s.Args) {
				t.Fatalf("%d parameters for %d arguments:\n%s\nargs %q", len(sd.ParamOIDs), len(s.Args), s.SQL, s.Args)
			}
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, err = tx.Exec(ctx, s.SQL, s.Args...)
			_ = tx.Rollback(ctx)
			if err != nil && !(errors.As(err, &pgErr) && strings.Contains(" 21 22 23 ", " "+pgErr.Code[:2]+" ")) {
				t.Fatalf("running the rendered SQL: %v\n%s\nargs %q", err, s.SQL, s.Args)
			}
		}
	})
}
