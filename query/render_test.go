package query

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/piccolo-go/piccolo"
)

type band struct {
	ID         int64   `piccolo:"id,pk"`
	Name       string  `piccolo:"name,unique,length=50"`
	Manager    *int64  `piccolo:"manager,fk=manager(id),ondelete=set null"`
	Popularity int32   `piccolo:",default=0,index"`
	Rating     float64 `piccolo:",notnull"`
}

type manager struct {
	ID   int64  `piccolo:"id,pk"`
	Name string `piccolo:"name,unique"`
}

// hostile has identifiers that must be quoted to mean themselves.
type hostile struct {
	Select string `piccolo:"select,pk"`
	Quote  string `piccolo:"a\"b"`
	Semi   string `piccolo:"x; DROP TABLE band; --"`
	Mixed  string `piccolo:"MixedCase,index"`
	Uni    string `piccolo:"楽団"`
}

var (
	bands       = MustTable[band]("band")
	managers    = MustTable[manager]("manager")
	hostiles    = MustTable[hostile]("Order\"; --", Schema("My Schema"))
	bID         = C(bands, func(b *band) *int64 { return &b.ID })
	bName       = C(bands, func(b *band) *string { return &b.Name })
	bManager    = C(bands, func(b *band) **int64 { return &b.Manager })
	bPopularity = C(bands, func(b *band) *int32 { return &b.Popularity })
	bRating     = C(bands, func(b *band) *float64 { return &b.Rating })
	mName       = C(managers, func(m *manager) *string { return &m.Name })
	hSelect     = C(hostiles, func(h *hostile) *string { return &h.Select })
	hQuote      = C(hostiles, func(h *hostile) *string { return &h.Quote })
	hSemi       = C(hostiles, func(h *hostile) *string { return &h.Semi })
)

// stmt is one expected statement.
type stmt struct {
	sql  string
	args []any
}

func TestRender(t *testing.T) {
	t.Parallel()
	one := int64(1)
	tests := []struct {
		name string
		q    piccolo.Query
		want []stmt
	}{
		{"select all", bands.Select(),
			[]stmt{{`SELECT "id", "name", "manager", "popularity", "rating" FROM "band"`, nil}}},
		{"select distinct offset", bands.Select(bName).Distinct().OrderBy(bName.Asc()).Offset(20).Limit(10),
			[]stmt{{`SELECT DISTINCT "name" FROM "band" ORDER BY "name" ASC LIMIT $1 OFFSET $2`, []any{10, 20}}}},
		{"comparisons", bands.Select(bID).Where(bID.Eq(1), bID.Ne(2), bID.Lt(3), bID.Le(4), bID.Gt(5), bID.Ge(6)),
			[]stmt{{`SELECT "id" FROM "band" WHERE "id" = $1 AND "id" <> $2 AND "id" < $3 AND "id" <= $4 AND "id" > $5 AND "id" >= $6`,
				[]any{int64(1), int64(2), int64(3), int64(4), int64(5), int64(6)}}}},
		{"in, not in, empty", bands.Select(bID).Where(bName.In("a", "b"), bName.NotIn("c"), bName.NotIn(), bID.In()),
			[]stmt{{`SELECT "id" FROM "band" WHERE "name" = ANY($1) AND "name" <> ALL($2) AND "name" IS NOT NULL AND "id" = ANY($3)`,
				[]any{[]string{"a", "b"}, []string{"c"}, []int64{}}}}},
		{"null, like, between", bands.Select(bID).Where(bManager.IsNull(), bManager.IsNotNull(), bName.Like("a%"), bName.ILike("B%"), bRating.Between(1.5, 2.5)),
			[]stmt{{`SELECT "id" FROM "band" WHERE "manager" IS NULL AND "manager" IS NOT NULL AND "name" LIKE $1 AND "name" ILIKE $2 AND "rating" BETWEEN $3 AND $4`,
				[]any{"a%", "B%", 1.5, 2.5}}}},
		{"pointer value", bands.Select(bID).Where(bManager.Eq(&one)),
			[]stmt{{`SELECT "id" FROM "band" WHERE "manager" = $1`, []any{&one}}}},
		{"and or not nesting", bands.Select(bID).Where(Or(And(bID.Eq(1), bID.Eq(2)), Not(Or(bID.Eq(3), bID.Eq(4))), And(bID.Eq(5)))),
			[]stmt{{`SELECT "id" FROM "band" WHERE ("id" = $1 AND "id" = $2) OR NOT ("id" = $3 OR "id" = $4) OR "id" = $5`,
				[]any{int64(1), int64(2), int64(3), int64(4), int64(5)}}}},
		{"empty and, empty or", bands.Select(bID).Where(And(), Or()),
			[]stmt{{`SELECT "id" FROM "band" WHERE TRUE AND FALSE`, nil}}},
		{"raw fragment renumbered", bands.Select(bID).Where(bID.Gt(1), SQL("$2 < \"x$1\" AND '$1' = $1 -- $9\n AND $$ $1 $$ = $tag$ $3 $tag$ /* $7 /* $8 */ */ AND a$1 = E'\\' $1'", "a", "b")),
			[]stmt{{"SELECT \"id\" FROM \"band\" WHERE \"id\" > $1 AND ($3 < \"x$1\" AND '$1' = $2 -- $9\n AND $$ $1 $$ = $tag$ $3 $tag$ /* $7 /* $8 */ */ AND a$1 = E'\\' $1')",
				[]any{int64(1), "a", "b"}}}},
		{"lock nowait", bands.Select(bID).ForShare().NoWait(),
			[]stmt{{`SELECT "id" FROM "band" FOR SHARE NOWAIT`, nil}}},
		{"count all", bands.Count(), []stmt{{`SELECT count(*) FROM "band"`, nil}}},
		{"exists all", bands.Exists(), []stmt{{`SELECT EXISTS (SELECT 1 FROM "band")`, nil}}},
		{"insert do nothing", managers.Insert(&manager{ID: 3, Name: "a"}).OnConflictDoNothing(),
			[]stmt{{`INSERT INTO "manager" ("id", "name") VALUES ($1, $2) ON CONFLICT DO NOTHING`, []any{int64(3), "a"}}}},
		{"insert do nothing target", managers.Insert(&manager{Name: "a"}).OnConflictDoNothing(mName),
			[]stmt{{`INSERT INTO "manager" ("id", "name") VALUES (DEFAULT, $1) ON CONFLICT ("name") DO NOTHING`, []any{"a"}}}},
		{"insert do update set", bands.Insert(&band{Name: "a"}).OnConflictDoUpdate([]Col{bName}, bPopularity).Returning(bID, bPopularity),
			[]stmt{{`INSERT INTO "band" ("id", "name", "manager", "popularity", "rating") VALUES (DEFAULT, $1, $2, $3, $4) ON CONFLICT ("name") DO UPDATE SET "popularity" = EXCLUDED."popularity" RETURNING "id", "popularity"`,
				[]any{"a", (*int64)(nil), int32(0), 0.0}}}},
		{"insert no returning", managers.Insert(&manager{Name: "a"}).Returning(),
			[]stmt{{`INSERT INTO "manager" ("id", "name") VALUES (DEFAULT, $1)`, []any{"a"}}}},
		{"insert omit pk", managers.Insert(&manager{ID: 9, Name: "a"}).Omit(C(managers, func(m *manager) *int64 { return &m.ID })),
			[]stmt{{`INSERT INTO "manager" ("name") VALUES ($1) RETURNING "id"`, []any{"a"}}}},
		{"update", bands.Update(bName.Set("b")).Set(bRating.Set(2)).Where(bID.Eq(1)),
			[]stmt{{`UPDATE "band" SET "name" = $1, "rating" = $2 WHERE "id" = $3`, []any{"b", 2.0, int64(1)}}}},
		{"update all", bands.Update(bPopularity.Set(0)).All(),
			[]stmt{{`UPDATE "band" SET "popularity" = $1`, []any{int32(0)}}}},
		{"delete returning", bands.Delete().Where(bID.In(1, 2)).Returning(bID, bName),
			[]stmt{{`DELETE FROM "band" WHERE "id" = ANY($1) RETURNING "id", "name"`, []any{[]int64{1, 2}}}}},
		{"create", bands.Create(), []stmt{
			{`CREATE TABLE "band" ("id" bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "name" varchar(50) NOT NULL UNIQUE, "manager" bigint REFERENCES "manager" ("id") ON DELETE SET NULL, "popularity" integer NOT NULL DEFAULT 0, "rating" double precision NOT NULL)`, nil},
			{`CREATE INDEX "band_popularity_idx" ON "band" ("popularity")`, nil}}},
		{"drop table", bands.DropTable(), []stmt{{`DROP TABLE "band"`, nil}}},
		{"create index concurrently named", bands.CreateIndex(bRating).Name("by rating").Concurrently(),
			[]stmt{{`CREATE INDEX CONCURRENTLY "by rating" ON "band" ("rating")`, nil}}},
		{"drop index", bands.DropIndex("x").Concurrently(), []stmt{{`DROP INDEX CONCURRENTLY "x"`, nil}}},
		{"add column if not exists", bands.AddColumn(bRating).IfNotExists(),
			[]stmt{{`ALTER TABLE "band" ADD COLUMN IF NOT EXISTS "rating" double precision NOT NULL`, nil}}},
		{"drop column cascade", bands.DropColumn("old").Cascade(), []stmt{{`ALTER TABLE "band" DROP COLUMN "old" CASCADE`, nil}}},

		// Hostile identifiers: reserved words, quotes, ';', '--', mixed case
		// and Unicode all quoted, schema included.
		{"hostile create", hostiles.Create(), []stmt{
			{`CREATE TABLE "My Schema"."Order""; --" ("select" text PRIMARY KEY, "a""b" text NOT NULL, "x; DROP TABLE band; --" text NOT NULL, "MixedCase" text NOT NULL, "楽団" text NOT NULL)`, nil},
			{`CREATE INDEX "Order""; --_MixedCase_idx" ON "My Schema"."Order""; --" ("MixedCase")`, nil}}},
		{"hostile select", hostiles.Select(hQuote, hSemi).Where(hSelect.Eq(`'; DROP TABLE band; --`)).OrderBy(hQuote.Desc()),
			[]stmt{{`SELECT "a""b", "x; DROP TABLE band; --" FROM "My Schema"."Order""; --" WHERE "select" = $1 ORDER BY "a""b" DESC`,
				[]any{`'; DROP TABLE band; --`}}}},
		{"hostile insert", hostiles.Insert(&hostile{Select: `"`, Quote: "--"}),
			[]stmt{{`INSERT INTO "My Schema"."Order""; --" ("select", "a""b", "x; DROP TABLE band; --", "MixedCase", "楽団") VALUES ($1, $2, $3, $4, $5)`,
				[]any{`"`, "--", "", "", ""}}}},
		{"hostile drop", hostiles.DropTable().IfExists(), []stmt{{`DROP TABLE IF EXISTS "My Schema"."Order""; --"`, nil}}},
		{"hostile drop index", hostiles.DropIndex(`i"x`), []stmt{{`DROP INDEX "My Schema"."i""x"`, nil}}},
		{"hostile rename", hostiles.RenameColumn("Old Name", hQuote), []stmt{{`ALTER TABLE "My Schema"."Order""; --" RENAME COLUMN "Old Name" TO "a""b"`, nil}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			qs, err := tt.q.Querystrings()
			if err != nil {
				t.Fatal(err)
			}
			var got []stmt
			for _, q := range qs {
				got = append(got, stmt{q.SQL, q.Args})
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%#v\nwant\n%#v", got, tt.want)
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	t.Parallel()
	bad := C(bands, func(*band) *int64 { return nil })
	tests := []struct {
		name string
		q    piccolo.Query
		want string
	}{
		{"other table's column", bands.Select().Where(mName.Eq("x")), `query: Select "band": column "name" belongs to table "manager", not "band"`},
		{"failed C", bands.Select(bad), "the accessor returned nil"},
		{"zero column", bands.Select(Column[int]{}), "zero Column"},
		{"nil col", bands.Select(nil), "zero Column"},
		{"nil expr", bands.Select().Where(nil), "nil Expr"},
		{"zero order", bands.Select().OrderBy(Order{}), "zero Column"},
		{"like on integer", bands.Select().Where(bID.Like("1%")), `LIKE on column "id" of type bigint`},
		{"negative limit", bands.Select().Limit(-1), "negative Limit or Offset: -1"},
		{"skip locked alone", bands.Select().SkipLocked(), "SKIP LOCKED needs ForUpdate or ForShare"},
		{"distinct for update", bands.Select().Distinct().ForUpdate(), "does not allow FOR UPDATE with DISTINCT"},
		{"distinct order by unselected", bands.Select(bName).Distinct().OrderBy(bName.Asc(), bID.Desc()), "OrderBy columns must be selected"},
		{"sql missing arg", bands.Select().Where(SQL("a = $2", 1)), "placeholder $2 with 1 arguments"},
		{"sql unused arg", bands.Select().Where(SQL("a = $1", 1, 2)), "argument 2 has no placeholder $2"},
		{"sql zero", bands.Select().Where(SQL("a = $0", 1)), "placeholder $0"},
		{"sql unterminated", bands.Select().Where(SQL("a = '$1", 1)), "unterminated"},
		{"sql empty", bands.Count().Where(SQL(" ")), "empty fragment"},
		{"update no where", bands.Update(bName.Set("x")), "no Where condition"},
		{"update empty and", bands.Update(bName.Set("x")).Where(And(And())), "no Where condition"},
		{"update no set", bands.Update().All(), "no assignment"},
		{"delete no where", bands.Delete().Where(), "no Where condition"},
		{"insert no rows", bands.Insert(), "no rows"},
		{"insert nil row", bands.Insert(nil), "row 0 is nil"},
		{"insert all omitted", managers.Insert(&manager{}).Omit(C(managers, func(m *manager) *int64 { return &m.ID }), mName), "every column is omitted"},
		{"do update no target", bands.Insert(&band{}).OnConflictDoUpdate(nil), "needs the conflict's target"},
		{"do update nothing to set", managers.Insert(&manager{}).OnConflictDoUpdate([]Col{mName}), "no column to update"},
		{"do nothing returning", bands.Insert(&band{}).OnConflictDoNothing().Returning(bID), "Returning with OnConflictDoNothing"},
		{"index no columns", bands.CreateIndex(), "no columns"},
		{"index name too long", bands.CreateIndex(bName).Name(strings.Repeat("i", 64)), "longer than 63 bytes"},
		{"drop index empty", bands.DropIndex(""), "invalid identifier"},
		{"drop index concurrently cascade", bands.DropIndex("i").Concurrently().Cascade(), "CONCURRENTLY with CASCADE"},
		{"add other table's column", bands.AddColumn(mName), "belongs to table"},
		{"add nil col", bands.AddColumn(nil), `query: AddColumn to "band": query: zero Column`},
		{"drop column nul", bands.DropColumn("a\x00"), "NUL byte"},
		{"rename same", bands.RenameColumn("name", bName), "to the same name"},
		{"rename to nil col", bands.RenameColumn("old", nil), `query: RenameColumn of "band": query: zero Column`},
		{"rename nul", bands.RenameColumn("a\x00", nil), "NUL byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			qs, err := tt.q.Querystrings()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Querystrings() = %v, %v; want error containing %q", qs, err, tt.want)
			}
		})
	}
}

// TestWhereMatchingEveryRowIsNoWhere pins the ErrNoWhere guard: an Update
// or Delete whose conditions match every row unconditionally (none, nil,
// empty Ands at any depth, however wrapped in Or and Not) is refused
// unless told All; a condition that matches nothing (an empty Or) or
// depends on the row is not.
func TestWhereMatchingEveryRowIsNoWhere(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		where []Expr
		guard bool
	}{
		{"no where", nil, true},
		{"empty where", []Expr{}, true},
		{"nil expr", []Expr{nil}, true},
		{"empty and", []Expr{And()}, true},
		{"empty and in and", []Expr{And(And(), And())}, true},
		{"empty and in or", []Expr{Or(And())}, true},
		{"deep", []Expr{And(Or(And(And())), Not(Or()))}, true},
		{"or with a true branch", []Expr{Or(And(), bID.Eq(1))}, true},
		{"not of empty or", []Expr{Not(Or())}, true},
		{"not of empty in", []Expr{Not(bID.In())}, true},
		{"nil beside empty and", []Expr{And(), nil}, true},
		{"empty or matches nothing", []Expr{Or()}, false},
		{"empty in matches nothing", []Expr{bID.In()}, false},
		{"not of empty and", []Expr{Not(And())}, false},
		{"and with a condition", []Expr{And(And(), bID.Eq(1))}, false},
		{"or of conditions", []Expr{Or(bID.Eq(1), bID.Eq(2))}, false},
		{"empty not in is not null", []Expr{bName.NotIn()}, false},
		{"sql fragment", []Expr{SQL("TRUE")}, false},
		{"condition beside empty and", []Expr{And(), bID.Eq(1)}, false},
	}
	for _, tt := range tests {
		for _, q := range []piccolo.Query{bands.Update(bName.Set("x")).Where(tt.where...), bands.Delete().Where(tt.where...)} {
			_, err := q.Querystrings()
			if got := errors.Is(err, ErrNoWhere); got != tt.guard {
				t.Errorf("%s: %T: error %v; want ErrNoWhere %v", tt.name, q, err, tt.guard)
			}
		}
		// All opts in to every row, whatever the Where.
		if qs, err := bands.Delete().Where(tt.where...).All().Querystrings(); errors.Is(err, ErrNoWhere) {
			t.Errorf("%s: Delete with All: %v, %v", tt.name, qs, err)
		}
	}
}

// TestBuildersAreValues checks that extending a builder leaves the
// original as it was, even when the extensions share its backing arrays;
// Update and Delete, which share their Where, All and Returning, too.
func TestBuildersAreValues(t *testing.T) {
	t.Parallel()
	base := bands.Select(bID).Where(bID.Gt(0), bID.Lt(100))
	a := base.Where(bName.Eq("a")).Limit(1)
	b := base.Where(bName.Eq("b"))
	update := bands.Update(bName.Set("x")).Where(bID.Gt(0))
	remove := bands.Delete()
	for _, tt := range []struct {
		q    piccolo.Query
		want string
	}{
		{base, `SELECT "id" FROM "band" WHERE "id" > $1 AND "id" < $2`},
		{a, `SELECT "id" FROM "band" WHERE "id" > $1 AND "id" < $2 AND "name" = $3 LIMIT $4`},
		{b, `SELECT "id" FROM "band" WHERE "id" > $1 AND "id" < $2 AND "name" = $3`},
		{update, `UPDATE "band" SET "name" = $1 WHERE "id" > $2`},
		{update.Where(bID.Lt(100)).Returning(bID), `UPDATE "band" SET "name" = $1 WHERE "id" > $2 AND "id" < $3 RETURNING "id"`},
		{update.All(), `UPDATE "band" SET "name" = $1 WHERE "id" > $2`},
		{remove.All().Returning(bName), `DELETE FROM "band" RETURNING "name"`},
		{remove.Where(bID.Eq(1)), `DELETE FROM "band" WHERE "id" = $1`},
	} {
		qs, err := tt.q.Querystrings()
		if err != nil || qs[0].SQL != tt.want {
			t.Errorf("got %v, %v; want %s", qs, err, tt.want)
		}
	}
	if qs, _ := b.Querystrings(); qs[0].Args[2] != "b" {
		t.Errorf("b's argument %v was overwritten", qs[0].Args[2])
	}
	if _, err := remove.Querystrings(); !errors.Is(err, ErrNoWhere) {
		t.Errorf("Delete after All and Where on copies: %v; want ErrNoWhere", err)
	}
}

func TestInsertChunks(t *testing.T) {
	t.Parallel()
	// manager inserts two columns a row, one a parameter when the id is
	// zero: chunkParams/2 rows per statement.
	rows := make([]*manager, 4500)
	for i := range rows {
		rows[i] = &manager{Name: fmt.Sprint(i)}
	}
	qs, err := managers.Insert(rows...).Querystrings()
	if err != nil {
		t.Fatal(err)
	}
	perChunk := chunkParams / 2
	want := []int{perChunk, perChunk, len(rows) - 2*perChunk}
	if len(qs) != len(want) {
		t.Fatalf("%d statements; want %d", len(qs), len(want))
	}
	for i, q := range qs {
		if len(q.Args) != want[i] || strings.Count(q.SQL, "(DEFAULT, $") != want[i] {
			t.Errorf("statement %d: %d args; want %d", i, len(q.Args), want[i])
		}
		if !strings.HasSuffix(q.SQL, fmt.Sprintf("(DEFAULT, $%d) RETURNING \"id\"", want[i])) {
			t.Errorf("statement %d ends %q", i, q.SQL[len(q.SQL)-40:])
		}
	}
	if qs[2].Args[0] != fmt.Sprint(2*perChunk) {
		t.Errorf("third chunk starts with %v", qs[2].Args[0])
	}
}

// BenchmarkRenderPointRead is the query layer's own work in a point read
// before any I/O: building the Select and rendering it.
func BenchmarkRenderPointRead(b *testing.B) {
	b.ReportAllocs()
	for i := int64(0); b.Loop(); i++ {
		q, cols, err := bands.Select().Where(bID.Eq(i)).Limit(1).render()
		if err != nil || len(q.Args) != 2 || len(cols) != 5 {
			b.Fatal(q, err)
		}
	}
}
