package piccolo_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
)

// AtomicError.Index is the position of the failing query in the order of
// Add, past queries that render several statements and statements that
// return rows; the pipeline stops at the failure and nothing commits.
func TestAtomicErrorIndexCountsQueriesNotStatements(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	table := newTable(t, e)
	ctx := context.Background()
	ins := func(name string) piccolo.Query {
		return piccolo.Raw("INSERT INTO "+table+" (name) VALUES ($1) RETURNING id", name)
	}
	err := e.Atomic().Add(
		ins("a"),
		piccolo.Raw("SELECT g FROM generate_series(1, 50) g"),
		multi{}, // two statements: index 2
		ins("b"),
		piccolo.Raw("SELECT 1/0"), // index 4
		ins("c"),
	).Run(ctx)
	var ae *piccolo.AtomicError
	var pgErr *pgconn.PgError
	if !errors.As(err, &ae) || ae.Index != 4 || !errors.As(err, &pgErr) || pgErr.Code != "22012" {
		t.Fatalf("Run: %v, want AtomicError{Index: 4} wrapping 22012", err)
	}
	if got := names(t, e, table); len(got) != 0 {
		t.Fatalf("rows %v", got)
	}
	assertNoBorrowed(t, e)
}

// A prepare error or a client-side encode error in the middle of a run
// of data statements is reported at the query that caused it, not at the
// first of the run.
func TestAtomicErrorIndexOfPrepareAndEncodeErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		bad  piccolo.Query
	}{
		{"prepare error", piccolo.Raw("INSERT INTO no_such_table VALUES ($1)", 1)},
		{"encode error", piccolo.Raw("SELECT $1::int2", 70000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, true, piccolo.PostgresConfig{})
			table := newTable(t, e)
			ins := func(name string) piccolo.Query {
				return piccolo.Raw("INSERT INTO "+table+" (name) VALUES ($1)", name)
			}
			err := e.Atomic().Add(ins("a"), ins("b"), tc.bad, ins("c")).Run(context.Background())
			var ae *piccolo.AtomicError
			if !errors.As(err, &ae) || ae.Index != 2 {
				t.Fatalf("Run: %v, want AtomicError at index 2", err)
			}
			if got := names(t, e, table); len(got) != 0 {
				t.Fatalf("rows %v", got)
			}
			assertNoBorrowed(t, e)
		})
	}
}

// TestAtomicErrorTextIsUnambiguous pins that an AtomicError's text counts
// queries as people do (from one) and also shows the zero-based Index, so
// neither reading is a guess.
func TestAtomicErrorTextIsUnambiguous(t *testing.T) {
	t.Parallel()
	err := &piccolo.AtomicError{Index: 1, Err: errors.New("boom")}
	if got, want := err.Error(), "piccolo: Atomic: query #2 (Index 1) failed: boom"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
