package piccolo_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
)

func TestAtomicAllOrNothing(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	table := newTable(t, e)
	ins := func(name string) piccolo.Query {
		return piccolo.Raw("INSERT INTO "+table+" (name) VALUES ($1)", name)
	}
	ctx := context.Background()
	a := e.Atomic().Add(ins("a"), ins("b")).Add(ins("a"), ins("c"))
	err := a.Run(ctx)
	var ae *piccolo.AtomicError
	var pgErr *pgconn.PgError
	if !errors.As(err, &ae) || ae.Index != 2 || !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		t.Fatalf("Run: %v, want AtomicError at index 2 wrapping a unique violation", err)
	}
	if got := names(t, e, table); len(got) != 0 {
		t.Fatalf("a failed Atomic committed %v", got)
	}
	// The queue was cleared: running again does nothing.
	if err := a.Run(ctx); err != nil {
		t.Fatalf("empty Run: %v", err)
	}
	if err := a.Add(ins("x"), ins("y")).Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := names(t, e, table); !slices.Equal(got, []string{"x", "y"}) {
		t.Fatalf("rows %v", got)
	}
	assertNoBorrowed(t, e)
}

func TestAtomicDDLThenInsert(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	ctx := context.Background()
	t.Cleanup(func() { _ = e.RunDDL(context.Background(), `DROP TABLE IF EXISTS atomic_band, atomic_manager`) })
	err := e.Atomic().Add(
		piccolo.Raw(`CREATE TABLE atomic_manager (id serial PRIMARY KEY, name text)`),
		piccolo.Raw(`CREATE TABLE atomic_band (id serial PRIMARY KEY, name text, manager int REFERENCES atomic_manager(id))`),
		piccolo.Raw(`INSERT INTO atomic_manager (name) VALUES ($1)`, "Guido"),
		piccolo.Raw(`INSERT INTO atomic_band (name, manager) VALUES ($1, (SELECT id FROM atomic_manager WHERE name = $2))`, "Pythonistas", "Guido"),
	).Run(ctx)
	if err != nil {
		t.Fatalf("DDL followed by statements that need it: %v", err)
	}
	if n := scalar[int64](t, ctx, e, "SELECT count(*) FROM atomic_band JOIN atomic_manager ON atomic_manager.id = atomic_band.manager"); n != 1 {
		t.Fatalf("%d joined rows", n)
	}
}

func TestFailedAtomicLeavesNoTables(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	ctx := context.Background()
	err := e.Atomic().Add(
		piccolo.Raw(`CREATE TABLE atomic_ghost_1 (id int)`),
		piccolo.Raw(`CREATE TABLE atomic_ghost_2 (id int)`),
		piccolo.Raw(`CREATE TABLE atomic_ghost_1 (id int)`),
	).Run(ctx)
	var ae *piccolo.AtomicError
	if !errors.As(err, &ae) || ae.Index != 2 {
		t.Fatalf("Run: %v", err)
	}
	if n := scalar[int64](t, ctx, e, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'atomic_ghost_%'"); n != 0 {
		t.Fatalf("%d tables left behind", n)
	}
}

func TestAtomicJoinsOuterTransaction(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	table := newTable(t, e)
	ctx := context.Background()
	err := e.Transaction(ctx, func(ctx context.Context) error {
		if err := e.Atomic().Add(piccolo.Raw("INSERT INTO " + table + " (name) VALUES ('in atomic')")).Run(ctx); err != nil {
			return err
		}
		if n := scalar[int64](t, ctx, e, "SELECT count(*) FROM "+table); n != 1 {
			t.Errorf("the outer transaction does not see the Atomic's row")
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatal(err)
	}
	if got := names(t, e, table); len(got) != 0 {
		t.Fatalf("an Atomic inside a rolled-back transaction committed %v", got)
	}
}

// countRunner is a Runner: Atomic calls Run instead of sending its statements.
type countRunner struct {
	table string
	seen  *int64
}

func (r countRunner) Querystrings() ([]piccolo.Querystring, error) {
	return nil, errors.New("a Runner's statements are not sent by Atomic")
}

func (r countRunner) Run(ctx context.Context, e piccolo.Engine) error {
	return e.QueryFunc(ctx, piccolo.Querystring{SQL: "SELECT count(*) FROM " + r.table}, func(rows pgx.Rows) error {
		return rows.Scan(r.seen)
	})
}

func TestAtomicRunsRunners(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	table := newTable(t, e)
	var seen int64
	err := e.Atomic().Add(
		piccolo.Raw("INSERT INTO "+table+" (name) VALUES ('a')"),
		countRunner{table: table, seen: &seen},
		piccolo.Raw("INSERT INTO "+table+" (name) VALUES ('b')"),
	).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if seen != 1 {
		t.Fatalf("the Runner saw %d rows, want the 1 inserted before it", seen)
	}
	if got := names(t, e, table); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("rows %v", got)
	}
}

func TestAtomicRenderErrorBeforeIO(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	e := newEngine(t, true, piccolo.PostgresConfig{LogQueries: true, Logger: logger})
	err := e.Atomic().Add(piccolo.Raw("SELECT 1"), piccolo.Raw("")).Run(context.Background())
	var ae *piccolo.AtomicError
	if !errors.As(err, &ae) || ae.Index != 1 {
		t.Fatalf("Run: %v, want AtomicError at index 1", err)
	}
	if strings.Contains(logs.String(), "SELECT 1") {
		t.Fatal("statements were sent although a later query could not render")
	}
}
