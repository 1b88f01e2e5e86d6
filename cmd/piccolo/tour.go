package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/query"
)

// tour is one run of the playground's tour on an engine whose search_path
// is the playground's schema.
type tour struct {
	out      io.Writer
	st       style
	sql      *sqlPrinter // the engine's query log
	engine   *piccolo.PostgresEngine
	dsn      string // the engine's DSN, for a step that needs an engine of its own
	rows     int    // rows the batch step streams
	progress bool   // draw a progress bar: out is a terminal
	dropped  bool   // the cleanup step dropped the schema
}

// step is one stop of the tour. run does the work, printing as it goes,
// and returns a one-line verdict when the outcome was the expected one, or
// an error saying what differed.
type step struct {
	title string
	intro string
	run   func(ctx context.Context, t *tour) (verdict string, err error)
}

// tourSteps are the tour's steps in order; the last one cleans up.
func tourSteps() []step {
	return []step{
		{"Create the schema atomically", "The playground's tables are Go structs with piccolo tags. One Atomic: CREATE SCHEMA and each table's Create(), in order, all or nothing.", stepCreateSchema},
		{"Fill it", "Piccolo's playground data in one transaction: each typed Insert writes the new ids back into its structs, so the next rows point at them.", stepFill},
		{"Join along foreign keys", "A typed projection: each ticket with its concert's first band, that band's manager and the venue, joined along foreign keys (INNER for NOT NULL keys, LEFT for the nullable manager) into a struct of our own.", stepJoin},
		{"Aggregate per group", "Tickets per venue: GROUP BY a joined column, count(*), count(DISTINCT concert), min(price), HAVING and ORDER BY an aggregate, typed results.", stepAggregate},
		{"A transaction that commits", "engine.Transaction: the closure inserts a manager and a band, then saves the band again with more popularity; it returns nil, so its work is committed.", stepCommit},
		{"A transaction that fails and rolls back", "The closure doubles every band's popularity (an Update with All(): no Where, on purpose), then inserts a duplicate band: the error rolls everything back.", stepRollback},
		{"A nested block as a savepoint", "Inside a transaction, Transaction(..., Nesting(NestSavepoint)) runs in a savepoint: a failing block loses only its own work.", stepNestedSavepoint},
		{"Explicit savepoints", "engine.Begin, then tx.Savepoint: roll back to one, release another, commit.", stepSavepoints},
		{"Retry wins a serialization conflict", "Two goroutines read the same band's popularity in SERIALIZABLE transactions, wait for each other, then both write it back plus one. One of them must fail with 40001; Retry(5) runs its closure again from BEGIN.", stepRetry},
		{"A batch stream", "engine.Batch: a server-side cursor over generate_series, fetched in batches, in constant memory.", stepStream},
		{"Query logging switched on", "A second engine with LogQueries and LogResponses, logging through slog's text handler: every statement, BEGIN and COMMIT included, with its query id, arguments and duration.", stepLogging},
		{"Get or create under concurrency", "50 goroutines run the query layer's GetOrCreate on the same band at once: SELECT, INSERT ... ON CONFLICT DO NOTHING, SELECT again. Exactly one creates it; all see the same id.", stepGetOrCreate},
		{"Clean up", "Drop the playground's schema and everything in it.", stepCleanUp},
	}
}

// run runs steps, numbered from first+1 out of total, and stops at the first
// step that does not behave as expected, naming it in the error.
func (t *tour) run(ctx context.Context, steps []step, first, total int) error {
	for i, s := range steps {
		n := first + i + 1
		heading := fmt.Sprintf("── %d/%d  %s ", n, total, s.title)
		fmt.Fprintf(t.out, "\n%s\n%s\n", t.st.bold(heading+strings.Repeat("─", max(0, 72-len([]rune(heading))))), t.st.dim(s.intro))
		verdict, err := s.run(ctx, t)
		t.sql.setSummary(false) // prints what the step left unprinted
		if err != nil && ctx.Err() != nil {
			fmt.Fprintf(t.out, "%s interrupted: the step stopped part-way; what it had open was rolled back, and the cleanup follows\n", t.st.bold("■"))
			return fmt.Errorf("step %d/%d %q interrupted: %w", n, total, s.title, err)
		}
		if err != nil {
			fmt.Fprintf(t.out, "%s %v\n", t.st.red("✗"), err)
			return fmt.Errorf("step %d/%d %q did not behave as expected: %w", n, total, s.title, err)
		}
		fmt.Fprintf(t.out, "%s %s\n", t.st.green("✓"), verdict)
	}
	return nil
}

// show runs a query, then prints the SQL logged so far and the result.
func (t *tour) show(ctx context.Context, sql string, args ...any) (*resultTable, error) {
	res, err := queryTable(ctx, t.engine, piccolo.Querystring{SQL: sql, Args: args})
	t.sql.flush()
	if err != nil {
		return nil, err
	}
	writeTable(t.out, res, t.st)
	return res, nil
}

// selectRows runs q, then prints the SQL logged so far and the rows of
// table it returned: the columns named in only, or all of them.
func selectRows[T any](ctx context.Context, t *tour, table *query.Table[T], q query.Select[T], only ...string) ([]T, error) {
	rows, err := q.All(ctx, t.engine)
	t.sql.flush()
	if err != nil {
		return nil, err
	}
	writeTable(t.out, rowsTable(table.Columns(), rows, only...), t.st)
	return rows, nil
}

// scalar runs a query returning one row of one column and scans it into dst.
func (t *tour) scalar(ctx context.Context, dst any, sql string, args ...any) error {
	found := false
	err := t.engine.QueryFunc(ctx, piccolo.Querystring{SQL: sql, Args: args}, func(rows pgx.Rows) error {
		found = true
		return rows.Scan(dst)
	})
	if err == nil && !found {
		err = fmt.Errorf("%q returned no row", compactSQL(sql))
	}
	return err
}

// say prints a line of commentary, after the SQL that led to it.
func (t *tour) say(format string, args ...any) {
	t.sql.flush()
	fmt.Fprintf(t.out, format+"\n", args...)
}

// dropSchema drops the playground's schema, even after ctx has ended.
func (t *tour) dropSchema(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	if err := t.engine.RunDDL(ctx, dropSchemaSQL); err != nil {
		return fmt.Errorf("drop schema %s: %w", playgroundSchema, err)
	}
	t.dropped = true
	return nil
}

// stepCleanUp drops the schema and expects it gone.
func stepCleanUp(ctx context.Context, t *tour) (string, error) {
	if err := t.dropSchema(ctx); err != nil {
		return "", err
	}
	var left int64
	if err := t.scalar(ctx, &left, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", playgroundSchema); err != nil {
		return "", err
	}
	if left != 0 {
		return "", fmt.Errorf("schema %s still exists after DROP SCHEMA", playgroundSchema)
	}
	return "schema " + playgroundSchema + " dropped", nil
}
