package main

import (
	"context"
	"fmt"
	"slices"
)

// stepCreateSchema creates the schema in one Atomic and expects the five
// tables with their foreign keys.
func stepCreateSchema(ctx context.Context, t *tour) (string, error) {
	// A leftover of an earlier run that could not clean up (a crash) would
	// make CREATE SCHEMA fail: the schema is the playground's own.
	if err := t.engine.RunDDL(ctx, dropSchemaSQL); err != nil {
		return "", err
	}
	if err := t.engine.Atomic().Add(schemaQueries()...).Run(ctx); err != nil {
		return "", err
	}
	res, err := t.show(ctx, `SELECT c.relname AS "table", count(con.oid) AS foreign_keys
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_constraint con ON con.conrelid = c.oid AND con.contype = 'f'
		WHERE n.nspname = $1 AND c.relkind = 'r' GROUP BY c.oid, c.relname ORDER BY c.oid`, playgroundSchema)
	if err != nil {
		return "", err
	}
	var names []string
	fks := 0
	for _, row := range res.rows {
		names = append(names, row[0])
		var n int
		if _, err := fmt.Sscan(row[1], &n); err != nil {
			return "", fmt.Errorf("foreign key count %q: %w", row[1], err)
		}
		fks += n
	}
	if want := playgroundTables(); !slices.Equal(names, want) {
		return "", fmt.Errorf("tables %v, want %v", names, want)
	}
	if fks != 5 {
		return "", fmt.Errorf("%d foreign keys, want 5", fks)
	}
	return "5 tables with 5 foreign keys, created in one transaction", nil
}

// stepFill inserts the playground's data in one Atomic and expects every row.
func stepFill(ctx context.Context, t *tour) (string, error) {
	if err := t.engine.Atomic().Add(seedQueries()...).Run(ctx); err != nil {
		return "", err
	}
	for _, view := range []string{bandsView, concertsView, ticketsView} {
		if _, err := t.show(ctx, view); err != nil {
			return "", err
		}
	}
	res, err := t.show(ctx, `SELECT (SELECT count(*) FROM manager) AS managers, (SELECT count(*) FROM band) AS bands,
		(SELECT count(*) FROM venue) AS venues, (SELECT count(*) FROM concert) AS concerts,
		(SELECT count(*) FROM ticket) AS tickets`)
	if err != nil {
		return "", err
	}
	if got, want := res.rows[0], []string{"3", "3", "2", "2", "3"}; !slices.Equal(got, want) {
		return "", fmt.Errorf("row counts %v, want %v", got, want)
	}
	return fmt.Sprintf("%d statements in one transaction, the inserts pipelined: 3 managers, 3 bands, 2 venues, 2 concerts, 3 tickets", len(seedQueries())), nil
}
