package piccolo_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/pgtest"
)

// pointReadAllocs measures the allocations of one point read each way:
// pgx on a pgxpool, scanning into values and into a map (pgx.RowToMap), and
// the engine's QueryFunc and RunQuerystring doing the same, on pools of one
// connection (pgxpool's health check and the engine's both off the path).
func pointReadAllocs(t *testing.T) (pgxTyped, engineTyped, pgxMap, engineMap float64) {
	t.Helper()
	ctx := context.Background()
	e, table := pooledTable(t)
	mustInsert(t, ctx, e, table, "point")
	cfg, err := pgxpool.ParseConfig(pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	sql := "SELECT id, name FROM " + table + " WHERE id = $1"
	var (
		id   int32
		name string
	)
	must := func(err error) {
		if err != nil || name != "point" && id == 0 {
			t.Fatalf("point read: %v (%d, %q)", err, id, name)
		}
	}
	const runs = 200
	pgxTyped = testing.AllocsPerRun(runs, func() {
		must(pool.QueryRow(ctx, sql, 1).Scan(&id, &name))
	})
	scan := func(rows pgx.Rows) error { return rows.Scan(&id, &name) }
	engineTyped = testing.AllocsPerRun(runs, func() {
		must(e.QueryFunc(ctx, piccolo.Querystring{SQL: sql, Args: []any{1}}, scan))
	})
	pgxMap = testing.AllocsPerRun(runs, func() {
		rows, err := pool.Query(ctx, sql, 1)
		if err == nil {
			_, err = pgx.CollectExactlyOneRow(rows, pgx.RowToMap)
		}
		must(err)
	})
	engineMap = testing.AllocsPerRun(runs, func() {
		_, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: sql, Args: []any{1}})
		must(err)
	})
	return pgxTyped, engineTyped, pgxMap, engineMap
}

// A point read through the engine allocates what pgx's own does, plus one
// (the Querystring boxed into a Query at the call); as a map, pgx.RowToMap's
// plus one (the result's decoders and value arena, made once per result).
// Routing, the pooled connection's dead-session check and the statement's
// error and log wrappers allocate nothing per statement.
func TestPointReadAllocations(t *testing.T) {
	pgxTyped, engineTyped, pgxMap, engineMap := pointReadAllocs(t)
	t.Logf("allocations per point read: pgx %.0f, engine %.0f; as a map: pgx %.0f, engine %.0f", pgxTyped, engineTyped, pgxMap, engineMap)
	if engineTyped != pgxTyped+1 {
		t.Errorf("a typed point read allocates %.0f times through the engine, want pgx's %.0f + 1", engineTyped, pgxTyped)
	}
	if engineMap != pgxMap+1 {
		t.Errorf("a point read as a map allocates %.0f times through the engine, want pgx's %.0f + 1", engineMap, pgxMap)
	}
}

// A *Querystring (the query layer's fast path) runs as its Querystring
// does; a nil one is refused, never a panic.
func TestQuerystringPointer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	q := &piccolo.Querystring{SQL: "SELECT $1::int AS n", Args: []any{7}}
	rows, err := e.RunQuerystring(ctx, q)
	if err != nil || len(rows) != 1 || rows[0]["n"] != int32(7) {
		t.Fatalf("RunQuerystring(*Querystring): %v, %v", rows, err)
	}
	if tag, err := e.Exec(ctx, q); err != nil || tag.String() != "SELECT 1" {
		t.Fatalf("Exec(*Querystring): %v, %v", tag, err)
	}
	var nilQ *piccolo.Querystring
	if _, err := e.Exec(ctx, nilQ); err == nil {
		t.Error("Exec of a nil *Querystring succeeded")
	}
	if err := e.QueryFunc(ctx, nilQ, func(pgx.Rows) error { return nil }); err == nil {
		t.Error("QueryFunc of a nil *Querystring succeeded")
	}
}
