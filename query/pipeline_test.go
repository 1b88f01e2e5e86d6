package query_test

import (
	"context"
	"fmt"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/pgtest"
)

// countedEngine returns an engine of one pooled connection whose round
// trips turns counts.
func countedEngine(t *testing.T) (*piccolo.PostgresEngine, *pgtest.RoundTrips) {
	turns := &pgtest.RoundTrips{}
	eng := newEngineWith(t, piccolo.PostgresConfig{MaxConns: 1, Configure: func(pc *pgxpool.Config) {
		pc.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
		dial := pc.ConnConfig.DialFunc
		pc.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return turns.Conn(conn), nil
		}
	}})
	return eng, turns
}

// Typed Inserts in an Atomic share one pipeline, BEGIN and COMMIT
// included, once their statement is described: 100 independent Inserts
// cost one round trip, and each gets its own generated id back.
func TestAtomicPipelinesIndependentInserts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	eng, turns := countedEngine(t)
	must(t, eng.Atomic().Add(Managers.Create()).Run(ctx))
	for run := range 3 { // the first run describes the INSERT
		managers := make([]*Manager, 100)
		a := eng.Atomic()
		for i := range managers {
			managers[i] = &Manager{Name: fmt.Sprintf("m%d-%d", run, i)}
			a.Add(Managers.Insert(managers[i]))
		}
		turns.Reset()
		must(t, a.Run(ctx))
		if n := turns.Count(); run > 0 && n != 1 {
			t.Errorf("run %d: %d round trips for 100 typed Inserts in an Atomic, want 1", run, n)
		}
		seen := map[int64]bool{}
		for _, m := range managers {
			got, err := Managers.Objects().Get(ctx, eng, ManagerName.Eq(m.Name))
			if err != nil || m.ID == 0 || got.ID != m.ID || seen[m.ID] {
				t.Fatalf("run %d: manager %q has id %d, the table says %+v (%v)", run, m.Name, m.ID, got, err)
			}
			seen[m.ID] = true
		}
	}
}

// An Insert whose value points into a row an earlier Insert of the same
// Atomic writes back (Band.Manager holding &manager.ID) waits for that
// Insert: the chain costs a round trip per link, and the ids arrive.
func TestAtomicDependentInsertsWaitForIDs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	eng, turns := countedEngine(t)
	must(t, eng.Atomic().Add(Managers.Create(), Bands.Create()).Run(ctx))
	for run := range 3 {
		m1, m2 := &Manager{Name: fmt.Sprint("a", run)}, &Manager{Name: fmt.Sprint("b", run)}
		b1 := &Band{Name: fmt.Sprint("band a", run), Manager: &m1.ID}
		b2 := &Band{Name: fmt.Sprint("band b", run), Manager: &m2.ID}
		turns.Reset()
		must(t, eng.Atomic().Add(Managers.Insert(m1), Managers.Insert(m2), Bands.Insert(b1), Bands.Insert(b2)).Run(ctx))
		// BEGIN with both managers, then both bands with COMMIT.
		if n := turns.Count(); run > 0 && n != 2 {
			t.Errorf("run %d: %d round trips, want 2", run, n)
		}
		for _, b := range []*Band{b1, b2} {
			got, err := Bands.Objects().Get(ctx, eng, BandName.Eq(b.Name))
			if err != nil || got.Manager == nil || *got.Manager != *b.Manager || *b.Manager == 0 || b.ID == 0 {
				t.Fatalf("run %d: band %q stored %+v (%v), want manager %d", run, b.Name, got, err, *b.Manager)
			}
		}
	}
}
