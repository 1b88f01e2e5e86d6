package piccolo_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/piccolo-go/piccolo"
)

func TestSavepoints(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	table := newTable(t, e)
	ctx, tx, err := e.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)

	mustInsert(t, ctx, e, table, "before")
	sp1, err := tx.Savepoint(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	sp2, err := tx.Savepoint(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if sp1.Name() != "savepoint_1" || sp2.Name() != "savepoint_2" {
		t.Fatalf("generated names %q, %q", sp1.Name(), sp2.Name())
	}
	named, err := tx.Savepoint(ctx, "My_Point9")
	if err != nil || named.Name() != "My_Point9" {
		t.Fatalf("named savepoint: %v %v", named, err)
	}

	// RollbackTo keeps the rows from before the savepoint, and can repeat.
	for _, attempt := range []string{"first", "second"} {
		mustInsert(t, ctx, e, table, "after "+attempt)
		if err := named.RollbackTo(ctx); err != nil {
			t.Fatalf("rollback to (%s): %v", attempt, err)
		}
	}
	mustInsert(t, ctx, e, table, "kept")
	if err := named.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := named.RollbackTo(ctx); err == nil || !strings.Contains(err.Error(), "3B001") {
		t.Fatalf("rollback to a released savepoint: %v, want SQLSTATE 3B001", err)
	}
	// That failed statement aborted the transaction; an earlier savepoint
	// recovers it, by handle or by name.
	if err := tx.RollbackTo(ctx, "savepoint_2"); err != nil {
		t.Fatal(err)
	}
	mustInsert(t, ctx, e, table, "recovered")
	if err := tx.RollbackTo(ctx, "no_such"); err == nil {
		t.Fatal("rollback to a missing savepoint succeeded")
	}
	if err := sp1.RollbackTo(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := names(t, e, table); !slices.Equal(got, []string{"before"}) {
		t.Fatalf("rows %v, want [before]", got)
	}
	if _, err := tx.Savepoint(ctx, ""); !errors.Is(err, piccolo.ErrTransactionDone) {
		t.Fatalf("savepoint after commit: %v", err)
	}
}

func TestSavepointNames(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	ctx, tx, err := e.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"_private", true},
		{"Mixed_Case_123", true},
		{strings.Repeat("x", 63), true},
		{strings.Repeat("x", 64), false},
		{"1starts_with_digit", false},
		{"has space", false},
		{`quote"`, false},
		{"semi;colon", false},
		{"dash-dash", false},
		{"ünïcode", false},
		{"nul\x00", false},
	} {
		sp, err := tx.Savepoint(ctx, tc.name)
		if tc.ok != (err == nil) {
			t.Errorf("Savepoint(%q): %v", tc.name, err)
			continue
		}
		if !tc.ok {
			if !errors.Is(err, piccolo.ErrInvalidSavepointName) {
				t.Errorf("Savepoint(%q): %v, want ErrInvalidSavepointName", tc.name, err)
			}
			if err := tx.RollbackTo(ctx, tc.name); !errors.Is(err, piccolo.ErrInvalidSavepointName) {
				t.Errorf("RollbackTo(%q): %v, want ErrInvalidSavepointName", tc.name, err)
			}
			continue
		}
		if err := sp.RollbackTo(ctx); err != nil {
			t.Errorf("RollbackTo %q: %v", tc.name, err)
		}
	}
}
