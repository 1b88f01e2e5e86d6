package query_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/pgtest"
	"github.com/piccolo-go/piccolo/query"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The rest of Piccolo's playground schema; Manager and Band are declared
// in example_test.go.
type Venue struct {
	ID       int64  `piccolo:"id,pk"`
	Name     string `piccolo:"name,unique,length=100"`
	Capacity int32  `piccolo:",default=0"`
}

type Concert struct {
	ID     int64     `piccolo:"id,pk"`
	Band1  int64     `piccolo:"band_1,fk=band"`
	Band2  int64     `piccolo:"band_2,fk=band"`
	Venue  int64     `piccolo:"venue,fk=venue,index"`
	Starts time.Time `piccolo:"starts"`
}

type Ticket struct {
	ID      int64          `piccolo:"id,pk"`
	Concert int64          `piccolo:"concert,fk=concert,ondelete=cascade"`
	Price   pgtype.Numeric `piccolo:"price,type=numeric(5,2)"`
	Seat    string         `piccolo:"seat"`
}

var (
	Venues   = query.MustTable[Venue]("venue")
	Concerts = query.MustTable[Concert]("concert")
	Tickets  = query.MustTable[Ticket]("ticket")

	ManagerName   = query.C(Managers, func(m *Manager) *string { return &m.Name })
	VenueName     = query.C(Venues, func(v *Venue) *string { return &v.Name })
	VenueCapacity = query.C(Venues, func(v *Venue) *int32 { return &v.Capacity })
	ConcertVenue  = query.C(Concerts, func(c *Concert) *int64 { return &c.Venue })
	TicketID      = query.C(Tickets, func(t *Ticket) *int64 { return &t.ID })
	TicketConcert = query.C(Tickets, func(t *Ticket) *int64 { return &t.Concert })
	TicketSeat    = query.C(Tickets, func(t *Ticket) *string { return &t.Seat })
)

// playground lists the tables in creation order.
var playground = []piccolo.Query{Managers.Create(), Bands.Create(), Venues.Create(), Concerts.Create(), Tickets.Create()}

var schemaSeq atomic.Int64

// newEngine returns a pooled engine whose search_path is a schema of the
// test's own, so that tests running in parallel can use the same table
// names. The schema is dropped and the pool closed when the test ends.
func newEngine(t testing.TB) *piccolo.PostgresEngine {
	t.Helper()
	return newEngineWith(t, piccolo.PostgresConfig{MaxConns: 8})
}

// newLoggedEngine is newEngine with LogQueries on: the statements it sends
// from now on are in the returned log.
func newLoggedEngine(t testing.TB) (*piccolo.PostgresEngine, *statementLog) {
	t.Helper()
	log := &statementLog{}
	eng := newEngineWith(t, piccolo.PostgresConfig{MaxConns: 8, LogQueries: true, Logger: slog.New(log)})
	log.take()
	return eng, log
}

// newEngineWith is newEngine with cfg, whose DSN it sets.
func newEngineWith(t testing.TB, cfg piccolo.PostgresConfig) *piccolo.PostgresEngine {
	t.Helper()
	ctx := context.Background()
	schema := fmt.Sprintf("query_test_%d", schemaSeq.Add(1))
	admin, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{DSN: pgtest.DSN(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.RunDDL(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := admin.RunDDL(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	cfg.DSN = withSearchPath(t, pgtest.DSN(t), schema)
	eng, err := piccolo.NewPostgresEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.StartConnectionPool(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s := eng.Stat(); s.AcquiredConns() != 0 {
			t.Errorf("%d connections still borrowed at the end of the test", s.AcquiredConns())
		}
		eng.Close()
	})
	return eng
}

// statementLog is a slog.Handler that records the SQL of the statements an
// engine logs with LogQueries, BEGIN and COMMIT included.
type statementLog struct {
	mu  sync.Mutex
	sql []string
}

func (l *statementLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *statementLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *statementLog) WithGroup(string) slog.Handler            { return l }

func (l *statementLog) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != "sql" {
			return true
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		l.sql = append(l.sql, a.Value.String())
		return false
	})
	return nil
}

// take returns what each statement logged since the last take (or
// takeSQL) does, as its first word, or its first two for CREATE and DROP:
// BEGIN, INSERT, CREATE INDEX...
func (l *statementLog) take() []string {
	sql := l.takeSQL()
	for i, s := range sql {
		words := strings.Fields(s)
		n := 1
		if words[0] == "CREATE" || words[0] == "DROP" {
			n = 2
		}
		sql[i] = strings.Join(words[:min(n, len(words))], " ")
	}
	return sql
}

// takeSQL returns the statements logged since the last take or takeSQL.
func (l *statementLog) takeSQL() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	sql := l.sql
	l.sql = nil
	return sql
}

// withSearchPath adds search_path to a URL or key=value DSN.
func withSearchPath(t testing.TB, dsn, schema string) string {
	t.Helper()
	if !strings.Contains(dsn, "://") {
		return dsn + " search_path=" + schema
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// must fails the test on err.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// tableNames lists the tables of the engine's schema.
func tableNames(t testing.TB, eng *piccolo.PostgresEngine) []string {
	t.Helper()
	var names []string
	err := eng.QueryFunc(context.Background(), piccolo.Querystring{
		SQL: "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1",
	}, func(rows pgx.Rows) error {
		var n string
		names = append(names, n)
		return rows.Scan(&names[len(names)-1])
	})
	must(t, err)
	return names
}

func numeric(t testing.TB, s string) pgtype.Numeric {
	t.Helper()
	var n pgtype.Numeric
	must(t, n.Scan(s))
	return n
}

// fillPlayground creates the playground atomically and fills it: three
// managers, three bands, two venues, two concerts and three tickets.
func fillPlayground(t *testing.T, eng *piccolo.PostgresEngine) (bands []*Band, concerts []*Concert) {
	t.Helper()
	ctx := context.Background()
	must(t, eng.Atomic().Add(playground...).Run(ctx))
	guido, graydon, mads := &Manager{Name: "Guido"}, &Manager{Name: "Graydon"}, &Manager{Name: "Mads"}
	bands = []*Band{
		{Name: "Pythonistas", Manager: &guido.ID, Popularity: 1000},
		{Name: "Rustaceans", Manager: &graydon.ID, Popularity: 2000},
		{Name: "C-Sharps", Manager: &mads.ID, Popularity: 10},
	}
	amazing, small := &Venue{Name: "Amazing Venue", Capacity: 5000}, &Venue{Name: "Small Venue", Capacity: 100}
	// The bands point at the managers' ids, which the manager Insert writes
	// back before the band Insert renders: Insert runs as a piccolo.Runner.
	must(t, eng.Atomic().Add(
		Managers.Insert(guido, graydon, mads),
		Bands.Insert(bands...).Omit(BandFormed),
		Venues.Insert(amazing, small),
	).Run(ctx))
	concerts = []*Concert{
		{Band1: bands[0].ID, Band2: bands[1].ID, Venue: amazing.ID, Starts: time.Date(2025, 6, 1, 19, 0, 0, 0, time.UTC)},
		{Band1: bands[1].ID, Band2: bands[2].ID, Venue: small.ID, Starts: time.Date(2025, 7, 14, 20, 30, 0, 0, time.UTC)},
	}
	must(t, Concerts.Insert(concerts...).Run(ctx, eng))
	must(t, Tickets.Insert(
		&Ticket{Concert: concerts[0].ID, Price: numeric(t, "50.00"), Seat: "A1"},
		&Ticket{Concert: concerts[0].ID, Price: numeric(t, "50.00"), Seat: "A2"},
		&Ticket{Concert: concerts[1].ID, Price: numeric(t, "25.50"), Seat: "B1"},
	).Run(ctx, eng))
	return bands, concerts
}

// names returns the bands' names.
func bandNames(bands []Band) []string {
	out := make([]string, len(bands))
	for i, b := range bands {
		out[i] = b.Name
	}
	return out
}

func TestPlayground(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	eng := newEngine(t)
	bands, concerts := fillPlayground(t, eng)

	if got, want := tableNames(t, eng), []string{"band", "concert", "manager", "ticket", "venue"}; !slices.Equal(got, want) {
		t.Fatalf("tables %v; want %v", got, want)
	}
	for _, b := range bands {
		if b.ID == 0 || b.Manager == nil || *b.Manager == 0 || b.Formed.IsZero() {
			t.Errorf("band %+v: id, manager or formed not written back", b)
		}
	}

	t.Run("select", func(t *testing.T) {
		tests := []struct {
			name string
			q    query.Select[Band]
			want []string
		}{
			{"all ordered", Bands.Select().OrderBy(BandName.Asc()), []string{"C-Sharps", "Pythonistas", "Rustaceans"}},
			{"where", Bands.Select().Where(BandPopularity.Ge(1000)).OrderBy(BandPopularity.Desc()), []string{"Rustaceans", "Pythonistas"}},
			{"limit offset", Bands.Select().OrderBy(BandName.Asc()).Limit(1).Offset(1), []string{"Pythonistas"}},
			{"in", Bands.Select().Where(BandName.In("Rustaceans", "Nope", "C-Sharps")).OrderBy(BandName.Asc()), []string{"C-Sharps", "Rustaceans"}},
			{"not in", Bands.Select().Where(BandName.NotIn("Rustaceans", "C-Sharps")), []string{"Pythonistas"}},
			{"empty in", Bands.Select().Where(BandName.In()), nil},
			{"like", Bands.Select().Where(BandName.Like("%ust%")), []string{"Rustaceans"}},
			{"ilike", Bands.Select().Where(BandName.ILike("py%")), []string{"Pythonistas"}},
			{"between", Bands.Select().Where(BandPopularity.Between(10, 1000)).OrderBy(BandPopularity.Asc()), []string{"C-Sharps", "Pythonistas"}},
			{"is null", Bands.Select().Where(BandManager.IsNull()), nil},
			{"is not null", Bands.Select(BandName).Where(BandManager.IsNotNull()).OrderBy(BandName.Desc()), []string{"Rustaceans", "Pythonistas", "C-Sharps"}},
			{"or not", Bands.Select().Where(query.Or(BandPopularity.Lt(100), query.Not(BandName.Ne("Rustaceans")))).OrderBy(BandName.Asc()), []string{"C-Sharps", "Rustaceans"}},
			{"raw fragment", Bands.Select().Where(BandPopularity.Gt(0), query.SQL(`lower("name") = lower($1)`, "PYTHONISTAS")), []string{"Pythonistas"}},
			{"for update", Bands.Select().Where(BandName.Eq("C-Sharps")).ForUpdate(), []string{"C-Sharps"}},
		}
		for _, tt := range tests {
			got, err := tt.q.All(ctx, eng)
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
				continue
			}
			if !slices.Equal(bandNames(got), tt.want) {
				t.Errorf("%s: got %v; want %v", tt.name, bandNames(got), tt.want)
			}
		}
	})

	t.Run("distinct first count exists", func(t *testing.T) {
		caps, err := Tickets.Select(TicketConcert).Distinct().OrderBy(TicketConcert.Asc()).All(ctx, eng)
		if err != nil || len(caps) != 2 || caps[0].Concert != concerts[0].ID || caps[1].Concert != concerts[1].ID {
			t.Errorf("distinct concerts = %+v, %v", caps, err)
		}
		top, err := Bands.Select().OrderBy(BandPopularity.Desc()).First(ctx, eng)
		if err != nil || top.Name != "Rustaceans" || top.ID != bands[1].ID || *top.Manager != *bands[1].Manager {
			t.Errorf("First = %+v, %v", top, err)
		}
		if _, err := Bands.Select().Where(BandName.Eq("Nobody")).First(ctx, eng); !errors.Is(err, pgx.ErrNoRows) {
			t.Errorf("First of nothing: %v; want pgx.ErrNoRows", err)
		}
		for _, tt := range []struct {
			q    query.Count
			want int64
		}{{Bands.Count(), 3}, {Bands.Count().Where(BandPopularity.Gt(500)), 2}, {Tickets.Count().Where(TicketConcert.Eq(concerts[0].ID)), 2}} {
			if n, err := tt.q.Run(ctx, eng); n != tt.want || err != nil {
				t.Errorf("Count = %d, %v; want %d", n, err, tt.want)
			}
		}
		for _, tt := range []struct {
			q    query.Exists
			want bool
		}{{Bands.Exists().Where(BandName.Eq("Pythonistas")), true}, {Bands.Exists().Where(BandName.Eq("Nobody")), false}} {
			if ok, err := tt.q.Run(ctx, eng); ok != tt.want || err != nil {
				t.Errorf("Exists = %v, %v; want %v", ok, err, tt.want)
			}
		}
	})

	t.Run("objects", func(t *testing.T) {
		b, err := Bands.Objects().Get(ctx, eng, BandName.Eq("Pythonistas"))
		if err != nil || b.ID != bands[0].ID || b.Popularity != 1000 {
			t.Fatalf("Get = %+v, %v", b, err)
		}
		if _, err := Bands.Objects().Get(ctx, eng, BandName.Eq("Nobody")); !errors.Is(err, pgx.ErrNoRows) {
			t.Errorf("Get of nothing: %v", err)
		}
		if _, err := Bands.Objects().Get(ctx, eng, BandPopularity.Gt(0)); !errors.Is(err, query.ErrMultipleRows) {
			t.Errorf("Get of three: %v", err)
		}
		// Save an existing object: an update of every column.
		b.Popularity = 1500
		must(t, Bands.Save(&b).Run(ctx, eng))
		if again, err := Bands.Objects().Get(ctx, eng, BandID.Eq(b.ID)); err != nil || again.Popularity != 1500 || !again.Formed.Equal(b.Formed) {
			t.Errorf("after Save: %+v, %v", again, err)
		}
		// Save a new object: an insert that writes the id back.
		v := &Venue{Name: "Garage", Capacity: 40}
		must(t, Venues.Save(v).Run(ctx, eng))
		if v.ID == 0 {
			t.Fatal("Save of a new object did not write its id back")
		}
		v.Capacity = 50
		must(t, Venues.Save(v).Run(ctx, eng))
		if got, err := Venues.Objects().Get(ctx, eng, VenueName.Eq("Garage")); err != nil || got != *v {
			t.Errorf("saved venue = %+v, %v; want %+v", got, err, *v)
		}
		if n, err := Venues.Remove(v).Run(ctx, eng); n != 1 || err != nil {
			t.Errorf("Remove = %d, %v", n, err)
		}
		if n, err := Venues.Remove(v).Run(ctx, eng); n != 0 || err != nil {
			t.Errorf("second Remove = %d, %v; want 0 rows", n, err)
		}
		if _, err := Venues.Remove(&Venue{Name: "never saved"}).Run(ctx, eng); err == nil {
			t.Error("Remove of an object that was never saved did not fail")
		}
		all, err := Venues.Objects().OrderBy(VenueCapacity.Desc()).All(ctx, eng)
		if err != nil || len(all) != 2 || all[0].Name != "Amazing Venue" {
			t.Errorf("Objects().All = %+v, %v", all, err)
		}
	})

	t.Run("update delete guard", func(t *testing.T) {
		if _, err := Venues.Update(VenueCapacity.Set(1)).Run(ctx, eng); !errors.Is(err, query.ErrNoWhere) {
			t.Errorf("Update without Where: %v; want ErrNoWhere", err)
		}
		if _, err := Tickets.Delete().Run(ctx, eng); !errors.Is(err, query.ErrNoWhere) {
			t.Errorf("Delete without Where: %v; want ErrNoWhere", err)
		}
		if n, _ := Tickets.Count().Run(ctx, eng); n != 3 {
			t.Fatalf("the refused Delete removed rows: %d tickets left", n)
		}
		n, err := Venues.Update(VenueCapacity.Set(6000)).Where(VenueName.Eq("Amazing Venue")).Run(ctx, eng)
		if n != 1 || err != nil {
			t.Errorf("Update where = %d, %v", n, err)
		}
		doubled, err := Venues.Update(VenueCapacity.SetSQL(`"capacity" * $1`, 2)).Where(VenueName.Eq("Amazing Venue")).
			Returning(VenueCapacity).RunReturning(ctx, eng)
		if err != nil || len(doubled) != 1 || doubled[0].Capacity != 12000 {
			t.Errorf("Update SetSQL returning = %+v, %v; want capacity 12000", doubled, err)
		}
		got, err := Venues.Update(VenueCapacity.Set(7)).All().Returning(VenueName, VenueCapacity).RunReturning(ctx, eng)
		if err != nil || len(got) != 2 || got[0].Capacity != 7 || got[1].Capacity != 7 {
			t.Errorf("Update All returning = %+v, %v", got, err)
		}
		gone, err := Tickets.Delete().Where(TicketSeat.Eq("B1")).Returning(TicketSeat).RunReturning(ctx, eng)
		if err != nil || len(gone) != 1 || gone[0].Seat != "B1" {
			t.Errorf("Delete where returning = %+v, %v", gone, err)
		}
		if n, err := Tickets.Delete().All().Run(ctx, eng); n != 2 || err != nil {
			t.Errorf("Delete All = %d, %v", n, err)
		}
		if _, err := Venues.Update(VenueCapacity.Set(1)).All().RunReturning(ctx, eng); err == nil || !strings.Contains(err.Error(), `query: RunReturning on "venue": no Returning columns`) {
			t.Errorf("RunReturning without Returning: %v", err)
		}
	})

	t.Run("drop", func(t *testing.T) {
		must(t, eng.Atomic().Add(Tickets.DropTable(), Concerts.DropTable(), Venues.DropTable(), Bands.DropTable(), Managers.DropTable().IfExists()).Run(ctx))
		if got := tableNames(t, eng); len(got) != 0 {
			t.Errorf("tables left: %v", got)
		}
	})
}

// Rule: table creations queued on an Atomic commit together or not at all:
// a failing query after them names its index, and no table is left.
func TestAtomicCreateIsAllOrNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	eng := newEngine(t)
	err := eng.Atomic().Add(Managers.Create(), Bands.Create(), Venues.Create(), piccolo.Raw("SELECT 1/0")).Run(ctx)
	var ae *piccolo.AtomicError
	if !errors.As(err, &ae) || ae.Index != 3 {
		t.Fatalf("Atomic = %v; want an AtomicError at index 3", err)
	}
	if got := tableNames(t, eng); len(got) != 0 {
		t.Errorf("tables left by a failed Atomic: %v", got)
	}
}

// Rule: Select, Objects and Raw stream typed rows through a cursor in
// batches of BatchSize, every row once and in order; leaving the loop early
// closes the cursor and gives the connection back; a query that cannot
// render or run is yielded as an error.
func TestBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	eng := newEngine(t)
	_, concerts := fillPlayground(t, eng)
	if _, err := Tickets.Delete().All().Run(ctx, eng); err != nil {
		t.Fatal(err)
	}
	tickets := make([]*Ticket, 25)
	for i := range tickets {
		tickets[i] = &Ticket{Concert: concerts[i%2].ID, Price: numeric(t, "10.00"), Seat: fmt.Sprintf("S%02d", i)}
	}
	must(t, Tickets.Insert(tickets...).Run(ctx, eng))

	type stream func(opts ...piccolo.Option) func(yield func([]Ticket, error) bool)
	tests := []struct {
		name string
		rows stream
	}{
		{"select", func(opts ...piccolo.Option) func(func([]Ticket, error) bool) {
			return Tickets.Select().OrderBy(TicketSeat.Asc()).Batch(ctx, eng, opts...)
		}},
		{"objects", func(opts ...piccolo.Option) func(func([]Ticket, error) bool) {
			return Tickets.Objects().OrderBy(TicketSeat.Asc()).Batch(ctx, eng, opts...)
		}},
		{"raw", func(opts ...piccolo.Option) func(func([]Ticket, error) bool) {
			return Tickets.Raw(`SELECT seat, id FROM ticket WHERE seat LIKE $1 ORDER BY seat`, "S%").Batch(ctx, eng, opts...)
		}},
	}
	for _, tt := range tests {
		var sizes []int
		var seats []string
		for rows, err := range tt.rows(piccolo.BatchSize(10)) {
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			sizes = append(sizes, len(rows))
			for _, r := range rows {
				if r.ID == 0 {
					t.Errorf("%s: row %+v has no id", tt.name, r)
				}
				seats = append(seats, r.Seat)
			}
		}
		if !slices.Equal(sizes, []int{10, 10, 5}) || len(seats) != 25 || seats[0] != "S00" || seats[24] != "S24" {
			t.Errorf("%s: batches of %v, seats %v; want 10, 10, 5 and S00..S24", tt.name, sizes, seats)
		}
		// Leaving the loop early closes the cursor and returns the
		// connection (newEngine checks that none is left borrowed).
		for rows, err := range tt.rows(piccolo.BatchSize(4)) {
			if err != nil || len(rows) != 4 {
				t.Errorf("%s: first batch %d rows, %v", tt.name, len(rows), err)
			}
			break
		}
		if s := eng.Stat(); s.AcquiredConns() != 0 {
			t.Errorf("%s: %d connections borrowed after break", tt.name, s.AcquiredConns())
		}
	}

	t.Run("errors", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			rows func(func([]Ticket, error) bool)
		}{
			{"render", Tickets.Select().Limit(-1).Batch(ctx, eng)},
			{"unknown node", Tickets.Select().Batch(ctx, eng, piccolo.OnNode("nowhere"))},
			{"server", Tickets.Raw(`SELECT seat FROM no_such_table`).Batch(ctx, eng)},
			{"unknown column", Tickets.Raw(`SELECT 1 AS nope`).Batch(ctx, eng)},
		} {
			n := 0
			for rows, err := range tt.rows {
				n++
				if err == nil || rows != nil {
					t.Errorf("%s: yielded %v, %v; want an error", tt.name, rows, err)
				}
			}
			if n != 1 {
				t.Errorf("%s: %d values yielded; want the error once", tt.name, n)
			}
		}
	})

	t.Run("in a transaction", func(t *testing.T) {
		err := eng.Transaction(ctx, func(ctx context.Context) error {
			if err := Tickets.Insert(&Ticket{Concert: concerts[0].ID, Price: numeric(t, "1.00"), Seat: "T"}).Run(ctx, eng); err != nil {
				return err
			}
			total := 0
			for rows, err := range Tickets.Select().Batch(ctx, eng, piccolo.BatchSize(7)) {
				if err != nil {
					return err
				}
				total += len(rows)
			}
			if total != 26 {
				t.Errorf("the batch saw %d rows; want 26, the uncommitted one included", total)
			}
			return errors.New("roll back")
		})
		if err == nil || err.Error() != "roll back" {
			t.Errorf("Transaction = %v", err)
		}
	})
}

func TestGetOrCreateRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	eng := newEngine(t)
	must(t, eng.Atomic().Add(Managers.Create(), Bands.Create(), Venues.Create()).Run(ctx))
	const n = 50

	// race runs n goroutines that get or create the band name through
	// getOrCreate, which reports whether it created the row.
	race := func(t *testing.T, name string, getOrCreate func(ctx context.Context, i int, b *Band) (bool, error)) {
		t.Helper()
		ids := make([]int64, n)
		created := make([]bool, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				b := &Band{Name: name, Popularity: int32(i), Formed: time.Now()}
				created[i], errs[i] = getOrCreate(ctx, i, b)
				ids[i] = b.ID
			})
		}
		close(start)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if ids[i] == 0 || ids[i] != ids[0] {
				t.Fatalf("goroutine %d got band id %d, goroutine 0 got %d", i, ids[i], ids[0])
			}
		}
		if c := slices.Index(created, true); c < 0 || slices.Contains(created[c+1:], true) {
			t.Errorf("created flags %v; want exactly one true", created)
		}
		if rows, err := Bands.Count().Where(BandName.Eq(name)).Run(ctx, eng); rows != 1 || err != nil {
			t.Errorf("%d bands named %q, %v; want 1", rows, name, err)
		}
	}

	t.Run("autocommit", func(t *testing.T) {
		race(t, "Pythonistas", func(ctx context.Context, _ int, b *Band) (bool, error) {
			g := Bands.GetOrCreate(b, BandName)
			err := g.Run(ctx, eng)
			return g.Created(), err
		})
	})
	t.Run("in outer transactions", func(t *testing.T) {
		// Each goroutine also writes a venue of its own in its transaction:
		// every transaction must commit.
		race(t, "Rustaceans", func(ctx context.Context, i int, b *Band) (created bool, err error) {
			err = eng.Transaction(ctx, func(ctx context.Context) error {
				g := Bands.GetOrCreate(b, BandName)
				if err := g.Run(ctx, eng); err != nil {
					return err
				}
				created = g.Created()
				return Venues.Insert(&Venue{Name: fmt.Sprintf("venue %d", i)}).Run(ctx, eng)
			})
			return created, err
		})
		if v, err := Venues.Count().Run(ctx, eng); v != n || err != nil {
			t.Errorf("%d venues committed, %v; want %d", v, err, n)
		}
	})
	t.Run("in an Atomic", func(t *testing.T) {
		race(t, "C-Sharps", func(ctx context.Context, i int, b *Band) (bool, error) {
			g := Bands.GetOrCreate(b, BandName)
			err := eng.Atomic().Add(g, Venues.Insert(&Venue{Name: fmt.Sprintf("atomic venue %d", i)})).Run(ctx)
			return g.Created(), err
		})
		if v, err := Venues.Count().Where(VenueName.Like("atomic venue %")).Run(ctx, eng); v != n || err != nil {
			t.Errorf("%d venues committed, %v; want %d", v, err, n)
		}
	})
	t.Run("errors", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			g    piccolo.Runner
			want string
		}{
			{"no key", Bands.GetOrCreate(&Band{Name: "x"}), "no key columns"},
			{"nil key value", Bands.GetOrCreate(&Band{Name: "x"}, BandManager), "is NULL"},
			{"nil row", Bands.GetOrCreate(nil, BandName), "nil object"},
			{"key without unique constraint", Bands.GetOrCreate(&Band{Name: "Solo", Popularity: 12345}, BandPopularity), "is not the primary key, a column tagged unique"},
		} {
			if err := tt.g.Run(ctx, eng); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: %v; want an error containing %q", tt.name, err, tt.want)
			}
		}
	})
}

func TestGetOrCreateGivesUpWhenTheRowKeepsVanishing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	eng, log := newLoggedEngine(t)
	must(t, eng.Atomic().Add(Managers.Create(), Bands.Create()).Run(ctx))
	// A BEFORE INSERT trigger returning NULL drops the ghost's row: the
	// INSERT ... ON CONFLICT DO NOTHING returns no row, as when it conflicts
	// with a row deleted before the lookup, and the lookup finds none.
	must(t, eng.RunDDL(ctx, `CREATE FUNCTION vanish() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
		CREATE TRIGGER vanish BEFORE INSERT ON band FOR EACH ROW WHEN (NEW.name = 'ghost') EXECUTE FUNCTION vanish()`))
	log.take()
	g := Bands.GetOrCreate(&Band{Name: "ghost"}, BandName)
	err := g.Run(ctx, eng)
	if err == nil || !strings.Contains(err.Error(), "deleted between insert and lookup 3 times") || g.Created() {
		t.Errorf("Run = %v, created %v; want it to give up after 3 attempts", err, g.Created())
	}
	// Three rounds of lookup and insert, in no transaction of its own.
	if sent, want := log.take(), slices.Repeat([]string{"SELECT", "INSERT"}, 3); !slices.Equal(sent, want) {
		t.Errorf("sent %q; want %q", sent, want)
	}

	// A row that is there is found by the first lookup and fills the row
	// given, every column.
	found := &Band{Name: "found", Popularity: 3, Formed: time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)}
	must(t, Bands.Insert(found).Run(ctx, eng))
	log.take()
	g = Bands.GetOrCreate(&Band{Name: "found", Popularity: 999}, BandName)
	if err := g.Run(ctx, eng); err != nil || g.Created() || g.Row().ID != found.ID || g.Row().Popularity != 3 || !g.Row().Formed.Equal(found.Formed) {
		t.Errorf("Run = %v, created %v, row %+v; want the row found, %+v", err, g.Created(), g.Row(), found)
	}
	if sent := log.take(); !slices.Equal(sent, []string{"SELECT"}) {
		t.Errorf("sent %q; want the lookup alone", sent)
	}
}
