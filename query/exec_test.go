package query_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/query"
)

// createManagersAndBands creates the manager and band tables on eng.
func createManagersAndBands(t *testing.T, eng *piccolo.PostgresEngine) {
	t.Helper()
	must(t, eng.Atomic().Add(Managers.Create(), Bands.Create()).Run(context.Background()))
}

func TestSelectAllScansIntoFields(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	eng, log := newLoggedEngine(t)
	createManagersAndBands(t, eng)
	guido := &Manager{Name: "Guido"}
	must(t, Managers.Insert(guido).Run(ctx, eng))
	formed := time.Date(1991, 2, 20, 12, 30, 0, 0, time.UTC)
	want := []Band{
		{Name: "Pythonistas", Manager: &guido.ID, Popularity: 1000, Formed: formed},
		{Name: "Rustaceans", Manager: nil, Popularity: 500, Formed: formed.AddDate(24, 0, 0)},
	}
	must(t, Bands.Insert(&want[0], &want[1]).Run(ctx, eng))

	got, err := Bands.Select().OrderBy(BandID.Asc()).All(ctx, eng)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		got[i].Formed = got[i].Formed.UTC() // pgx scans timestamptz in time.Local
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("All = %+v; want %+v", got, want)
	}
	if got[0].Manager == &guido.ID {
		t.Error("the scanned *int64 aliases the inserted row's")
	}

	log.take()
	first, err := Bands.Select(BandName).Where(BandPopularity.Lt(1000)).First(ctx, eng)
	if err != nil || first != (Band{Name: "Rustaceans"}) {
		t.Errorf("First of one column = %+v, %v; want only the name set", first, err)
	}
	if sent := log.takeSQL(); !slices.Equal(sent, []string{`SELECT "name" FROM "band" WHERE "popularity" < $1 LIMIT $2`}) {
		t.Errorf("First sent %q", sent)
	}
	if _, err := Bands.Select().Where(BandName.Eq("Nobody")).First(ctx, eng); !errors.Is(err, sql.ErrNoRows) {
		t.Errorf("First with no rows: %v; want sql.ErrNoRows", err)
	}
}

// Rule: Insert.Run sends one chunk as one INSERT with no transaction and
// writes the generated ids back into the rows; RETURNING fewer rows than
// were sent (a trigger skipped one) is an error, not a silent mismatch.
func TestInsertRunWritesBackIDs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	eng, log := newLoggedEngine(t)
	createManagersAndBands(t, eng)
	log.take()
	a, b := &Manager{Name: "a"}, &Manager{Name: "b"}
	must(t, Managers.Insert(a, b).Run(ctx, eng))
	if sent := log.take(); !slices.Equal(sent, []string{"INSERT"}) {
		t.Errorf("one chunk sent %q; want one INSERT, no transaction", sent)
	}
	got, err := Managers.Select().OrderBy(query.C(Managers, func(m *Manager) *int64 { return &m.ID }).Asc()).All(ctx, eng)
	if err != nil || !reflect.DeepEqual(got, []Manager{*a, *b}) || a.ID == 0 || a.ID == b.ID {
		t.Errorf("rows %+v, %v; want the inserted %+v and %+v with ids written back", got, err, *a, *b)
	}

	// A BEFORE INSERT trigger returning NULL skips a row: RETURNING gives
	// fewer rows than were sent, which Run reports.
	must(t, eng.RunDDL(ctx, `CREATE FUNCTION skip_row() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
		CREATE TRIGGER skip_row BEFORE INSERT ON manager FOR EACH ROW WHEN (NEW.name = 'skip') EXECUTE FUNCTION skip_row()`))
	err = Managers.Insert(&Manager{Name: "c"}, &Manager{Name: "skip"}).Run(ctx, eng)
	if err == nil || !strings.Contains(err.Error(), "RETURNING gave 1 rows for the 2 sent") {
		t.Errorf("short RETURNING: %v", err)
	}
}

// Rule: an Insert of more rows than one statement takes runs its chunks in
// one transaction: a failing chunk rolls back the ones before it.
func TestInsertRunChunksInOneTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	eng, log := newLoggedEngine(t)
	createManagersAndBands(t, eng)

	// newBands returns n bands, enough for several INSERT chunks.
	newBands := func(n int) []*Band {
		rows := make([]*Band, n)
		for i := range rows {
			rows[i] = &Band{Name: fmt.Sprintf("band %d", i), Popularity: int32(i)}
		}
		return rows
	}
	rows := newBands(2000)
	qs, err := Bands.Insert(rows...).Querystrings()
	if err != nil || len(qs) < 2 {
		t.Fatalf("%d statements, %v; the test needs at least two chunks", len(qs), err)
	}
	chunks := len(qs)

	t.Run("all or nothing", func(t *testing.T) {
		// The last row repeats the first one's unique name: the last chunk
		// fails, and the chunks before it must be rolled back with it.
		rows := newBands(2000)
		rows[len(rows)-1].Name = rows[0].Name
		log.take()
		err := Bands.Insert(rows...).Run(ctx, eng)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != pgerrcode.UniqueViolation {
			t.Fatalf("Run = %v; want a unique violation", err)
		}
		want := append(append([]string{"BEGIN"}, slices.Repeat([]string{"INSERT"}, chunks)...), "ROLLBACK")
		if sent := log.take(); !slices.Equal(sent, want) {
			t.Errorf("sent %q; want %q", sent, want)
		}
		if n, err := Bands.Count().Run(ctx, eng); n != 0 || err != nil {
			t.Errorf("%d bands left by the failed insert, %v; want none", n, err)
		}
	})

	t.Run("committed", func(t *testing.T) {
		log.take()
		must(t, Bands.Insert(rows...).Run(ctx, eng))
		want := append(append([]string{"BEGIN"}, slices.Repeat([]string{"INSERT"}, chunks)...), "COMMIT")
		if sent := log.take(); !slices.Equal(sent, want) {
			t.Errorf("sent %q; want %q", sent, want)
		}
		ids := map[int64]bool{}
		for _, r := range rows {
			ids[r.ID] = true
		}
		if n, err := Bands.Count().Run(ctx, eng); n != int64(len(rows)) || err != nil || len(ids) != len(rows) || ids[0] {
			t.Errorf("%d bands, %v, %d distinct ids written back; want %d of each", n, err, len(ids), len(rows))
		}
		last, err := Bands.Objects().Get(ctx, eng, BandID.Eq(rows[len(rows)-1].ID))
		if err != nil || last.Name != rows[len(rows)-1].Name {
			t.Errorf("the last chunk's last row: %+v, %v; want %q", last, err, rows[len(rows)-1].Name)
		}
	})
}

func TestExecRunsStatementsInOrderInATransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	eng, log := newLoggedEngine(t)

	must(t, query.Exec(ctx, eng, Managers.Create()))
	if sent := log.take(); !slices.Equal(sent, []string{"CREATE TABLE"}) {
		t.Errorf("one statement sent %q; want it without a transaction", sent)
	}

	// Band's CREATE INDEX needs the table its CREATE TABLE makes, in the
	// same transaction.
	must(t, query.Exec(ctx, eng, Bands.Create()))
	if sent, want := log.take(), []string{"BEGIN", "CREATE TABLE", "CREATE INDEX", "COMMIT"}; !slices.Equal(sent, want) {
		t.Errorf("sent %q; want %q", sent, want)
	}
	if got, want := tableNames(t, eng), []string{"band", "manager"}; !slices.Equal(got, want) {
		t.Errorf("tables %v; want %v", got, want)
	}

	// With the index's name taken, CREATE INDEX fails and the CREATE TABLE
	// before it is rolled back.
	must(t, query.Exec(ctx, eng, Bands.DropTable()))
	must(t, eng.RunDDL(ctx, "CREATE TABLE band_popularity_idx (x int)"))
	log.take()
	err := query.Exec(ctx, eng, Bands.Create())
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != pgerrcode.DuplicateTable {
		t.Errorf("Exec = %v; want a duplicate table error (42P07)", err)
	}
	if sent, want := log.take(), []string{"BEGIN", "CREATE TABLE", "CREATE INDEX", "ROLLBACK"}; !slices.Equal(sent, want) {
		t.Errorf("sent %q; want %q", sent, want)
	}
	if got, want := tableNames(t, eng), []string{"band_popularity_idx", "manager"}; !slices.Equal(got, want) {
		t.Errorf("tables %v; want %v: the failed Exec left its first statement's work", got, want)
	}

	// A piccolo.Runner runs through its Run: the id is written back.
	m := &Manager{Name: "runner"}
	if err := query.Exec(ctx, eng, Managers.Insert(m)); err != nil || m.ID == 0 {
		t.Errorf("Exec of a Runner: %v, id %d", err, m.ID)
	}
}

func TestInsertLoadsManyRowsWithCopy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	eng, log := newLoggedEngine(t)
	createManagersAndBands(t, eng)
	newBands := func(prefix string, n int) []*Band {
		rows := make([]*Band, n)
		for i := range rows {
			rows[i] = &Band{Name: fmt.Sprintf("%s %d", prefix, i), Popularity: int32(i)}
		}
		return rows
	}
	count := func() int64 {
		t.Helper()
		n, err := Bands.Count().Run(ctx, eng)
		must(t, err)
		return n
	}

	// Nothing to write back and enough rows: one COPY, ids from the database.
	log.take()
	must(t, Bands.Insert(newBands("copied", 1500)...).Returning().Run(ctx, eng))
	if sent := log.take(); !slices.Equal(sent, []string{"COPY"}) {
		t.Fatalf("sent %q; want one COPY", sent)
	}
	if n := count(); n != 1500 {
		t.Fatalf("%d bands after the COPY, want 1500", n)
	}
	last, err := Bands.Objects().Get(ctx, eng, BandName.Eq("copied 1499"))
	if err != nil || last.ID == 0 || last.Popularity != 1499 {
		t.Fatalf("a copied row: %+v, %v", last, err)
	}

	// A COPY that fails loads nothing.
	bad := newBands("bad", 1500)
	bad[1499].Name = "copied 0" // taken
	err = Bands.Insert(bad...).Returning().Run(ctx, eng)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != pgerrcode.UniqueViolation {
		t.Fatalf("COPY with a taken name: %v; want a unique violation", err)
	}
	if n := count(); n != 1500 {
		t.Fatalf("%d bands after the failed COPY, want 1500", n)
	}

	// Ids to write back, some ids set and some not, or too few rows: INSERTs.
	mixed := newBands("mixed", 1500)
	mixed[0].ID = 1_000_000
	for _, rows := range [][]*Band{newBands("returned", 1500), mixed, newBands("few", 10)} {
		q := Bands.Insert(rows...)
		if rows[0].Name != "returned 0" {
			q = q.Returning()
		}
		log.take()
		must(t, q.Run(ctx, eng))
		if sent := log.take(); slices.Contains(sent, "COPY") {
			t.Errorf("%s: sent %q; want INSERTs", rows[0].Name, sent)
		}
	}
	if n := count(); n != 1500+1500+1500+10 {
		t.Fatalf("%d bands in all", n)
	}
}

// TestErrorsNameTheOperationOnce pins how the query layer's errors read:
// one "query:" prefix naming the operation the caller asked for (a Save is
// not an Insert, a GetOrCreate not a Select), and an error from the
// server passed on as the engine gives it, which names the statement: the
// query layer adds the SQL no second time. The causes stay reachable.
func TestErrorsNameTheOperationOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	eng := newEngine(t)
	createManagersAndBands(t, eng)
	taken := &Band{Name: "taken", Formed: time.Now()}
	must(t, Bands.Insert(taken).Run(ctx, eng))

	dup := &Band{Name: "taken", Formed: time.Now()}
	zero := &Band{Name: "zero"}
	for _, tt := range []struct {
		name    string
		err     error
		prefix  string // the error starts so
		without string // and does not contain this
		is      error
	}{
		{"GetOrCreate with a NULL key", Bands.GetOrCreate(&Band{}, BandManager).Run(ctx, eng),
			`query: GetOrCreate in "band": the object's Manager is NULL`, "Select", nil},
		{"Remove of an unsaved object", first(Bands.Remove(zero).Run(ctx, eng)),
			`query: Remove from "band": zero primary key`, "Delete", query.ErrZeroKey},
		{"Save of a duplicate", Bands.Save(dup).Run(ctx, eng),
			`piccolo: INSERT INTO "band"`, "query:", nil},
		{"Get of a missing row", first(Bands.Objects().Get(ctx, eng, BandName.Eq("none"))),
			`query: Get from "band": no rows`, "Select", sql.ErrNoRows},
		{"First of no row", first(Bands.Select().Where(BandName.Eq("none")).First(ctx, eng)),
			`query: First from "band": no rows`, "Select", sql.ErrNoRows},
		{"Count of a missing table", first(Venues.Count().Run(ctx, eng)),
			`piccolo: SELECT count(*) FROM "venue"`, "query:", nil},
	} {
		if tt.err == nil || !strings.HasPrefix(tt.err.Error(), tt.prefix) || strings.Contains(tt.err.Error(), tt.without) {
			t.Errorf("%s: %v\nwant it to start %q and not to contain %q", tt.name, tt.err, tt.prefix, tt.without)
			continue
		}
		if n := strings.Count(tt.err.Error(), "INSERT INTO") + strings.Count(tt.err.Error(), "SELECT"); n > 1 {
			t.Errorf("%s: the statement appears %d times: %v", tt.name, n, tt.err)
		}
		if tt.is != nil && !errors.Is(tt.err, tt.is) {
			t.Errorf("%s: errors.Is(%v, %v) is false", tt.name, tt.err, tt.is)
		}
	}
	err := Bands.Save(dup).Run(ctx, eng)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != pgerrcode.UniqueViolation {
		t.Errorf("Save of a duplicate: %v; want the unique violation reachable", err)
	}
}

// first returns the error of a two-result call.
func first[V any](_ V, err error) error { return err }
