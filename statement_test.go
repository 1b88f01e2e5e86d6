package piccolo_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/piccolo-go/piccolo"
)

// script is a Query of several statements, as a table's Create with its
// indexes is.
type script []piccolo.Querystring

func (s script) Querystrings() ([]piccolo.Querystring, error) { return s, nil }

// TestEveryEntryPointTakesAQueryOrAQuerystring pins that Querystring and
// Query mix: Exec, QueryFunc and RunQuerystring take Raw and builders as
// well as a Querystring, and Batch and Atomic take a Querystring; a query
// of several statements runs through Exec all or nothing, and entry points
// that run one statement refuse it before any I/O.
func TestEveryEntryPointTakesAQueryOrAQuerystring(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	table := newTable(t, e)

	if _, err := e.Exec(ctx, piccolo.Raw("INSERT INTO "+table+" (name) VALUES ($1)", "raw")); err != nil {
		t.Fatalf("Exec(Raw): %v", err)
	}
	rows, err := e.RunQuerystring(ctx, piccolo.Raw("SELECT name FROM "+table))
	if err != nil || len(rows) != 1 || rows[0]["name"] != "raw" {
		t.Fatalf("RunQuerystring(Raw) = %v, %v", rows, err)
	}
	n := 0
	if err := e.QueryFunc(ctx, piccolo.Raw("SELECT 1 UNION ALL SELECT 2"), func(pgx.Rows) error { n++; return nil }); err != nil || n != 2 {
		t.Fatalf("QueryFunc(Raw): %d rows, %v", n, err)
	}
	if err := e.Atomic().Add(piccolo.Querystring{SQL: "INSERT INTO " + table + " (name) VALUES ('atomic')"}).Run(ctx); err != nil {
		t.Fatalf("Atomic of a Querystring: %v", err)
	}
	b, err := e.Batch(ctx, piccolo.Querystring{SQL: "SELECT name FROM " + table})
	if err != nil {
		t.Fatalf("Batch of a Querystring: %v", err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}

	insert := func(name string) piccolo.Querystring {
		return piccolo.Querystring{SQL: "INSERT INTO " + table + " (name) VALUES ($1)", Args: []any{name}}
	}
	tag, err := e.Exec(ctx, script{insert("a"), insert("b")})
	if err != nil || tag.String() != "INSERT 0 1" {
		t.Fatalf("Exec of two statements: %q, %v", tag, err)
	}
	// All or nothing: the second fails (the name is unique), the first goes too.
	if _, err := e.Exec(ctx, script{insert("c"), insert("a")}); err == nil {
		t.Fatal("Exec of a script whose second statement fails succeeded")
	}
	if got := strings.Join(names(t, e, table), ","); got != "raw,atomic,a,b" {
		t.Errorf("rows after the scripts: %s, want raw,atomic,a,b (nothing of the failed script)", got)
	}

	for name, err := range map[string]error{
		"QueryFunc":         e.QueryFunc(ctx, script{insert("d"), insert("e")}, func(pgx.Rows) error { return nil }),
		"RunQuerystring":    second(e.RunQuerystring(ctx, script{insert("d"), insert("e")})),
		"Exec with options": second(e.Exec(ctx, script{insert("d"), insert("e")}, piccolo.OnNode("r1"))),
		"Exec of nil":       second(e.Exec(ctx, nil)),
	} {
		if err == nil {
			t.Errorf("%s: succeeded, want a refusal", name)
		}
	}
	if got := strings.Join(names(t, e, table), ","); got != "raw,atomic,a,b" {
		t.Errorf("a refused call ran something: rows %s", got)
	}
	if err := e.QueryFunc(ctx, script{}, func(pgx.Rows) error { return nil }); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("QueryFunc of no statement: %v, want a refusal", err)
	}
}

// second returns the error of a two-result call.
func second[T any](_ T, err error) error { return err }
