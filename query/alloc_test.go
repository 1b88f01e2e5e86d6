package query_test

import (
	"context"
	"testing"
)

// A typed point read through the query layer (Select.First, Objects.Get)
// allocates pgx's own count plus five: the builder's Where and Limit, the
// rendered SQL and its arguments, and the reading of its rows (one
// allocation, the statement included). Measured beside pgx in the same
// test: a property of the code, not a timing.
func TestPointReadAllocations(t *testing.T) {
	ctx := context.Background()
	eng, pool := benchSetup(t, 10)
	const hand = `SELECT "id", "name", "qty", "price", "created" FROM "item" WHERE "id" = $1`
	var it Item
	check := func(err error) {
		if err != nil || it.ID != 3 {
			t.Fatalf("point read: %+v, %v", it, err)
		}
	}
	const runs = 200
	pgx := testing.AllocsPerRun(runs, func() {
		check(pool.QueryRow(ctx, hand, int64(3)).Scan(&it.ID, &it.Name, &it.Qty, &it.Price, &it.Created))
	})
	first := testing.AllocsPerRun(runs, func() {
		var err error
		it, err = Items.Select().Where(ItemID.Eq(3)).First(ctx, eng)
		check(err)
	})
	get := testing.AllocsPerRun(runs, func() {
		var err error
		it, err = Items.Objects().Get(ctx, eng, ItemID.Eq(3))
		check(err)
	})
	t.Logf("allocations per point read: pgx %.0f, Select.First %.0f, Objects.Get %.0f", pgx, first, get)
	for name, got := range map[string]float64{"Select.First": first, "Objects.Get": get} {
		if got > pgx+5 {
			t.Errorf("%s allocates %.0f times, want at most pgx's %.0f + 5", name, got, pgx)
		}
	}
}
