package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
)

func TestAtomicAllOrNothing(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
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
	assertRows(t, e, table) // a failed Atomic commits nothing
	// The queue was cleared: running again does nothing.
	if err := a.Run(ctx); err != nil {
		t.Fatalf("empty Run: %v", err)
	}
	if err := a.Add(ins("x"), ins("y")).Run(ctx); err != nil {
		t.Fatal(err)
	}
	assertRows(t, e, table, "x", "y")
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
	e, table := pooledTable(t)
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
	assertRows(t, e, table) // an Atomic inside a rolled-back transaction commits nothing
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
	e, table := pooledTable(t)
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
	assertRows(t, e, table, "a", "b")
}

func TestAtomicRenderErrorBeforeIO(t *testing.T) {
	t.Parallel()
	e, logs := loggedEngine(t)
	err := e.Atomic().Add(piccolo.Raw("SELECT 1"), piccolo.Raw("")).Run(context.Background())
	var ae *piccolo.AtomicError
	if !errors.As(err, &ae) || ae.Index != 1 {
		t.Fatalf("Run: %v, want AtomicError at index 1", err)
	}
	if strings.Contains(logs.String(), "SELECT 1") {
		t.Fatal("statements were sent although a later query could not render")
	}
}

// A queued script that controls the transaction (a migration file's
// BEGIN ... COMMIT) is refused before any I/O: run as SQL, its COMMIT would
// end the Atomic's transaction, and the statements after it would run in
// autocommit and stay committed while the Atomic reports failure.
func TestFailedAtomicCommitsNothing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		script string
	}{
		{"migration file", "BEGIN; INSERT INTO %[1]s (name) VALUES ('migrated'); COMMIT"},
		{"commit alone", "COMMIT"},
		{"end", "INSERT INTO %[1]s (name) VALUES ('before end'); END"},
		{"start transaction", "START TRANSACTION ISOLATION LEVEL SERIALIZABLE"},
		{"rollback", "ROLLBACK"},
		{"abort", "abort work"},
		{"commit and chain", "COMMIT AND CHAIN"},
		{"savepoint", "SAVEPOINT s1"},
		{"release", "SAVEPOINT s1; RELEASE s1"},
		{"rollback to", "ROLLBACK TRANSACTION TO SAVEPOINT s1"},
		{"prepare transaction", "PREPARE TRANSACTION 'piccolo_atomic'"},
		{"commit prepared", "COMMIT PREPARED 'piccolo_atomic'"},
		{"after a comment and a string", "/* ; */ SELECT 'x;y', $$;$$; -- ;\n commit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, logs := loggedEngine(t)
			table := newTable(t, e)
			err := e.Atomic().Add(
				piccolo.Raw("INSERT INTO "+table+" (name) VALUES ('first')"),
				piccolo.Raw(strings.ReplaceAll(tc.script, "%[1]s", table)),
				piccolo.Raw("INSERT INTO "+table+" (name) VALUES ('after')"),
				piccolo.Raw("SELECT 1/0"),
			).Run(context.Background())
			if got := names(t, e, table); len(got) != 0 {
				t.Errorf("a failed Atomic committed %v", got)
			}
			var ae *piccolo.AtomicError
			if !errors.As(err, &ae) || ae.Index != 1 || !errors.Is(err, piccolo.ErrTransactionControl) || !strings.Contains(err.Error(), "Atomic owns the transaction") {
				t.Fatalf("Run: %v, want an AtomicError at index 1 saying Atomic owns the transaction", err)
			}
			if strings.Contains(logs.String(), "first") {
				t.Fatalf("statements were sent before the script was refused:\n%s", logs)
			}
			assertNoBorrowed(t, e)
		})
	}
}

// Words that only look like transaction control are not refused.
func TestAtomicAcceptsScriptsThatOnlyMentionTransactionControl(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	fn := fmt.Sprintf("atomic_fn_%d", tableSeq.Add(1))
	t.Cleanup(func() { _ = e.RunDDL(context.Background(), "DROP FUNCTION IF EXISTS "+fn) })
	err := e.Atomic().Add(
		piccolo.Raw("INSERT INTO "+table+" (name) VALUES ('commit; rollback')"),
		piccolo.Raw(`INSERT INTO `+table+` (name) SELECT "begin" FROM (VALUES ('begin')) AS v ("begin")`),
		piccolo.Raw("CREATE FUNCTION "+fn+"() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END"),
		piccolo.Raw("DO $$ BEGIN PERFORM 1; END $$"),
	).Run(context.Background())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	assertRows(t, e, table, "commit; rollback", "begin")
}

// Statements that can create what later statements use run before those
// are described: SELECT ... INTO, CREATE TABLE AS, and a data statement
// whose function creates a table.
func TestAtomicStatementsSeeTablesCreatedBeforeThem(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	ctx := context.Background()
	n := tableSeq.Add(1)
	fn := fmt.Sprintf("atomic_make_%d", n)
	made := fmt.Sprintf("atomic_made_%d", n)
	if err := e.RunDDL(ctx, "CREATE FUNCTION "+fn+"() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'CREATE TABLE "+made+" (id int)'; END $$"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.RunDDL(context.Background(), "DROP FUNCTION IF EXISTS "+fn+"; DROP TABLE IF EXISTS "+made)
	})
	for _, tc := range []struct {
		name, create string
		made         string // the table create makes; "" to generate one
		rows         int64  // rows after the Atomic; -1: a temporary table, gone with the session
	}{
		{"select into", "SELECT 1 AS id INTO %s", "", 2},
		{"with select into", "WITH v AS (SELECT 1 AS id) SELECT id INTO %s FROM v", "", 2},
		{"select into temporary", "(SELECT 1 AS id INTO TEMPORARY TABLE %s)", "", -1},
		{"create table as", "CREATE TABLE %s AS SELECT 1 AS id", "", 2},
		{"function that creates a table", "SELECT " + fn + "()", made, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			table, create := tc.made, tc.create
			if table == "" {
				table = fmt.Sprintf("atomic_into_%d", tableSeq.Add(1))
				create = fmt.Sprintf(tc.create, table)
			}
			t.Cleanup(func() { _ = e.RunDDL(context.Background(), "DROP TABLE IF EXISTS "+table) })
			err := e.Atomic().Add(
				piccolo.Raw("SELECT $1::int", 1),
				piccolo.Raw(create),
				piccolo.Raw("INSERT INTO "+table+" (id) VALUES ($1)", 2),
				piccolo.Raw("SELECT count(*) FROM "+table),
			).Run(ctx)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if tc.rows < 0 {
				return
			}
			if n := scalar[int64](t, ctx, e, "SELECT count(*) FROM "+table); n != tc.rows {
				t.Fatalf("%d rows in %s, want %d", n, table, tc.rows)
			}
		})
	}
}

type atomicJSON struct {
	A int `json:"a"`
}

// Atomic encodes arguments as Exec does (from the statement's
// description, knowing each parameter's type): the same Raw query stores
// the same data, or fails, alone or in an Atomic.
func TestAtomicEncodesArgumentsLikeExec(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	ctx := context.Background()
	table := fmt.Sprintf(`"atomic_args_%d"`, tableSeq.Add(1))
	if err := e.RunDDL(ctx, "CREATE TABLE "+table+` (k text PRIMARY KEY, t text, ts timestamp, tstz timestamptz, j jsonb, a int8[], b bytea, s int2, u uuid)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.RunDDL(context.Background(), "DROP TABLE "+table) })
	plus2 := time.FixedZone("plus2", 2*3600)
	for _, tc := range []struct {
		name, col string
		arg       any
	}{
		{"[]byte into text", "t", []byte("hello")},
		{"time.Time (+02:00) into timestamp", "ts", time.Date(2024, 5, 6, 7, 8, 9, 0, plus2)},
		{"time.Time into timestamptz", "tstz", time.Date(2024, 5, 6, 7, 8, 9, 0, plus2)},
		{"struct into jsonb", "j", atomicJSON{A: 1}},
		{"map[string]string into jsonb", "j", map[string]string{"a": "b"}},
		{"map[string]any into jsonb", "j", map[string]any{"a": 1.0}},
		{"[]byte JSON into jsonb", "j", []byte(`{"a": 1}`)},
		{"string into jsonb", "j", `{"a": 1}`},
		{"[]int64 into int8[]", "a", []int64{1, 2, 3}},
		{"[]byte into bytea", "b", []byte{0, 1, 255}},
		{"nil into text", "t", nil},
		{"int into int2", "s", 7},
		{"[16]byte into uuid", "u", [16]byte{1, 2, 3}},
	} {
		insertSQL := "INSERT INTO " + table + " (k, " + tc.col + ") VALUES ($1, $2)"
		read := func(key string) string {
			rows, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT " + tc.col + "::text AS v FROM " + table + " WHERE k = $1", Args: []any{key}})
			if err != nil || len(rows) != 1 {
				return fmt.Sprintf("<read: %v %v>", rows, err)
			}
			return fmt.Sprint(rows[0]["v"])
		}
		_, execErr := e.Exec(ctx, piccolo.Querystring{SQL: insertSQL, Args: []any{tc.name + " exec", tc.arg}})
		atomicErr := e.Atomic().Add(piccolo.Raw(insertSQL, tc.name+" atomic", tc.arg)).Run(ctx)
		if (execErr == nil) != (atomicErr == nil) {
			t.Errorf("%s: Exec err %v, Atomic err %v", tc.name, execErr, atomicErr)
			continue
		}
		if execErr != nil {
			continue
		}
		if got, want := read(tc.name+" atomic"), read(tc.name+" exec"); got != want {
			t.Errorf("%s: Atomic stored %q, Exec stored %q", tc.name, got, want)
		}
	}
}

// A DDL script of several statements runs in an Atomic as it does with
// RunDDL.
func TestAtomicRunsMultiStatementDDL(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	ctx := context.Background()
	name := fmt.Sprintf("atomic_multi_%d", tableSeq.Add(1))
	ddl := "CREATE TABLE " + name + " (id int); CREATE INDEX ON " + name + " (id)"
	t.Cleanup(func() { _ = e.RunDDL(context.Background(), "DROP TABLE IF EXISTS "+name) })
	if err := e.Atomic().Add(piccolo.Raw(ddl)).Run(ctx); err != nil {
		t.Fatalf("multi-statement DDL in an Atomic: %v", err)
	}
}

// AtomicError.Index is the position of the failing query in the order of
// Add, past queries that render several statements and statements that
// return rows; the pipeline stops at the failure and nothing commits.
func TestAtomicErrorIndexCountsQueriesNotStatements(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
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
	assertAtomicFailedAt(t, e, table, err, 4)
	if pgErr := (*pgconn.PgError)(nil); !errors.As(err, &pgErr) || pgErr.Code != "22012" {
		t.Fatalf("Run: %v, want AtomicError{Index: 4} wrapping 22012", err)
	}
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
			e, table := pooledTable(t)
			ins := func(name string) piccolo.Query {
				return piccolo.Raw("INSERT INTO "+table+" (name) VALUES ($1)", name)
			}
			err := e.Atomic().Add(ins("a"), ins("b"), tc.bad, ins("c")).Run(context.Background())
			assertAtomicFailedAt(t, e, table, err, 2)
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

// assertAtomicFailedAt fails the test unless err is an *AtomicError at
// index and the Atomic, rolled back, left table empty and no connection
// borrowed.
func assertAtomicFailedAt(t *testing.T, e *piccolo.PostgresEngine, table string, err error, index int) {
	t.Helper()
	var ae *piccolo.AtomicError
	if !errors.As(err, &ae) || ae.Index != index {
		t.Fatalf("Run: %v, want AtomicError at index %d", err, index)
	}
	assertRows(t, e, table)
	assertNoBorrowed(t, e)
}
