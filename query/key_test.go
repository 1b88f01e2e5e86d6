package query_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/query"
)

// Song has a uuid key the server generates.
type Song struct {
	ID    [16]byte `piccolo:"id,pk,default=gen_random_uuid()"`
	Title string   `piccolo:"title,unique"`
}

// Take has a pgtype.UUID key the server generates.
type Take struct {
	ID   pgtype.UUID `piccolo:"id,pk,default=gen_random_uuid()"`
	Song [16]byte    `piccolo:"song"`
}

// Serial has an integer key declared as serial.
type Serial struct {
	ID   int64  `piccolo:"id,pk,type=bigserial"`
	Name string `piccolo:"name"`
}

// Code has a text key with no DEFAULT: the caller must set it.
type Code struct {
	Code string `piccolo:"code,pk"`
	Name string `piccolo:"name,unique"`
}

var (
	Songs     = query.MustTable[Song]("song")
	Takes     = query.MustTable[Take]("take")
	Serials   = query.MustTable[Serial]("serial")
	Codes     = query.MustTable[Code]("code")
	SongTitle = query.C(Songs, func(s *Song) *string { return &s.Title })
	CodeName  = query.C(Codes, func(c *Code) *string { return &c.Name })
)

// TestZeroKeyWithDefaultIsSentAsDefault pins the rule for new rows: a zero
// primary key (0, "", the zero UUID) on a column with a DEFAULT (identity,
// serial, default=) is sent as DEFAULT, and RETURNING writes the server's
// key back; a non-zero key is sent as it is, and Save upserts by it.
func TestZeroKeyWithDefaultIsSentAsDefault(t *testing.T) {
	t.Parallel()
	u := [16]byte{15: 1}
	tests := []struct {
		name string
		q    piccolo.Query
		want []string
	}{
		{"insert uuid", Songs.Insert(&Song{Title: "a"}),
			[]string{`INSERT INTO "song" ("id", "title") VALUES (DEFAULT, $1) RETURNING "id"`}},
		{"save new uuid", Songs.Save(&Song{Title: "a"}),
			[]string{`INSERT INTO "song" ("id", "title") VALUES (DEFAULT, $1) RETURNING "id"`}},
		{"save uuid", Songs.Save(&Song{ID: u, Title: "a"}),
			[]string{`INSERT INTO "song" ("id", "title") VALUES ($1, $2) ON CONFLICT ("id") DO UPDATE SET "title" = EXCLUDED."title" RETURNING "id"`}},
		{"get or create uuid", Songs.GetOrCreate(&Song{Title: "a"}, SongTitle), []string{
			`SELECT "id", "title" FROM "song" WHERE "title" = $1`,
			`INSERT INTO "song" ("id", "title") VALUES (DEFAULT, $1) ON CONFLICT ("title") DO NOTHING RETURNING "id", "title"`}},
		{"save new pgtype uuid", Takes.Save(&Take{Song: u}),
			[]string{`INSERT INTO "take" ("id", "song") VALUES (DEFAULT, $1) RETURNING "id"`}},
		{"create serial", Serials.Create(), []string{`CREATE TABLE "serial" ("id" bigserial PRIMARY KEY, "name" text NOT NULL)`}},
		{"save new serial", Serials.Save(&Serial{Name: "a"}),
			[]string{`INSERT INTO "serial" ("id", "name") VALUES (DEFAULT, $1) RETURNING "id"`}},
		{"mixed keys", Songs.Insert(&Song{Title: "a"}, &Song{ID: u, Title: "b"}),
			[]string{`INSERT INTO "song" ("id", "title") VALUES (DEFAULT, $1), ($2, $3) RETURNING "id"`}},
	}
	for _, tt := range tests {
		qs, err := tt.q.Querystrings()
		var got []string
		for _, q := range qs {
			got = append(got, q.SQL)
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %q, %v\nwant %q", tt.name, got, err, tt.want)
		}
	}
}

// TestZeroKeyWithoutDefaultIsRefused pins the other half: a zero primary
// key on a column without a DEFAULT is refused with ErrZeroKey before any
// I/O, on every path that writes or looks up by the key (the COPY path of
// 1,000 rows and more included: Run gets no engine and must not need one).
func TestZeroKeyWithoutDefaultIsRefused(t *testing.T) {
	t.Parallel()
	many := make([]*Code, 1500)
	for i := range many {
		many[i] = &Code{Code: fmt.Sprint(i), Name: fmt.Sprint(i)}
	}
	many[700].Code = ""
	tests := []struct {
		name string
		err  error
	}{
		{"insert", renderErr(Codes.Insert(&Code{Code: "a"}, &Code{Name: "b"}))},
		{"save", renderErr(Codes.Save(&Code{Name: "b"}))},
		{"get or create", renderErr(Codes.GetOrCreate(&Code{Name: "b"}, CodeName))},
		{"remove", renderErr(Codes.Remove(&Code{Name: "b"}))},
		{"remove unsaved uuid", renderErr(Songs.Remove(&Song{Title: "b"}))},
		{"insert run", Codes.Insert(&Code{Name: "b"}).Run(context.Background(), nil)},
		{"copy run", Codes.Insert(many...).Returning().Run(context.Background(), nil)},
		{"save run", Codes.Save(&Code{Name: "b"}).Run(context.Background(), nil)},
		{"get or create run", Codes.GetOrCreate(&Code{Name: "b"}, CodeName).Run(context.Background(), nil)},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, query.ErrZeroKey) {
			t.Errorf("%s: %v; want ErrZeroKey", tt.name, tt.err)
		}
	}
	if err := renderErr(Codes.Insert(&Code{Code: "a"})); err != nil {
		t.Errorf("a set text key: %v", err)
	}
}

// TestZeroUUIDKeysGetServerGeneratedKeys runs the rule on a real server:
// new objects with a zero uuid key become distinct rows whatever the path
// (Save, Insert, GetOrCreate, COPY), and their keys are written back.
func TestZeroUUIDKeysGetServerGeneratedKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	eng, log := newLoggedEngine(t)
	must(t, query.Exec(ctx, eng, Songs.Create()))
	var zero [16]byte

	a, b := &Song{Title: "a"}, &Song{Title: "b"}
	must(t, Songs.Save(a).Run(ctx, eng))
	must(t, Songs.Save(b).Run(ctx, eng))
	c := &Song{Title: "c"}
	must(t, Songs.Insert(c).Run(ctx, eng))
	g := Songs.GetOrCreate(&Song{Title: "d"}, SongTitle)
	must(t, g.Run(ctx, eng))
	d := g.Row()
	keys := [][16]byte{a.ID, b.ID, c.ID, d.ID}
	for i, k := range keys {
		if k == zero || slices.Contains(keys[:i], k) {
			t.Fatalf("keys written back %x: zero or repeated", keys)
		}
	}

	// Saving an object with its key updates its row.
	a.Title = "a2"
	must(t, Songs.Save(a).Run(ctx, eng))
	got, err := Songs.Objects().Get(ctx, eng, query.C(Songs, func(s *Song) *[16]byte { return &s.ID }).Eq(a.ID))
	if err != nil || !reflect.DeepEqual(got, *a) {
		t.Fatalf("after Save of a saved object: %+v, %v; want %+v", got, err, *a)
	}

	// COPY leaves the key out when every row's is zero: the server
	// generates each one.
	rows := make([]*Song, 1500)
	for i := range rows {
		rows[i] = &Song{Title: fmt.Sprint("copied ", i)}
	}
	log.take()
	must(t, Songs.Insert(rows...).Returning().Run(ctx, eng))
	if sent := log.take(); !slices.Equal(sent, []string{"COPY"}) {
		t.Fatalf("sent %q; want one COPY", sent)
	}
	var distinct int64
	must(t, eng.QueryFunc(ctx, piccolo.Querystring{SQL: `SELECT count(DISTINCT id) FROM song WHERE id <> '00000000-0000-0000-0000-000000000000'`},
		func(r pgx.Rows) error { return r.Scan(&distinct) }))
	if distinct != 1500+4 {
		t.Fatalf("%d distinct non-zero keys; want %d", distinct, 1500+4)
	}
}

// renderErr returns the error of rendering q.
func renderErr(q piccolo.Query) error {
	_, err := q.Querystrings()
	return err
}
