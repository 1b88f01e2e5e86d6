package main

import (
	"context"
	"strings"
	"testing"

	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/pgtest"
)

// TestShellScript drives the shell through a script on stdin, bad input
// included: every error is printed and the session goes on.
func TestShellScript(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t)
	script := `CREATE TABLE band (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO band VALUES (1, 'Pythonistas'), (2, 'Rustaceans');
SELECT id, name
  FROM band -- a comment; not the end
  ORDER BY id;
\bogus
\begin
INSERT INTO band VALUES (3, 'Gophers');
\savepoint before_dup
INSERT INTO band VALUES (1, 'again');
SELECT 'not run';
\rollback_to missing
\rollback_to before_dup
\release before_dup
\commit
SELECT count(*) AS bands FROM band;
\commit
BEGIN;
UPDATE band SET name = 'C-Sharps' WHERE id = 3 RETURNING id, name;
ROLLBACK;
SELECT name FROM band WHERE id = 3;
\batch 2 SELECT g FROM generate_series(1, 5) AS g;
\batch x SELECT 1
\timing on
SELECT 1 AS one; SELECT 'two' AS two;
\timing off
\savepoint
\?
\begin
INSERT INTO band VALUES (4, 'left open');
\q
SELECT 'after quit';
`
	stdout, stderr := runCLIOK(t, script, "shell", "--dsn", dsn)
	checkOutput(t, "stdout", stdout,
		"CREATE TABLE\nINSERT 0 2\n",
		" id |    name\n----+-------------\n  1 | Pythonistas\n  2 | Rustaceans\n(2 rows)\n",
		"BEGIN\nINSERT 0 1\nSAVEPOINT before_dup\n",
		"ROLLBACK\nRELEASE\nCOMMIT\n",
		" bands\n-------\n     3\n(1 row)\n",
		" id |   name\n----+----------\n  3 | C-Sharps\n(1 row)\n\nUPDATE 1\nROLLBACK\n",
		"  name\n---------\n Gophers\n(1 row)\n",
		"-- batch 1\n g\n---\n 1\n 2\n(2 rows)\n-- batch 2\n",
		"-- batch 3\n g\n---\n 5\n(1 row)\n(5 rows in 3 batches of up to 2)\n",
		"Timing is on.\n one\n-----\n   1\n(1 row)\nTime: ",
		"Timing is off.\n",
		`\rollback_to NAME`,
	)
	checkOutput(t, "stderr", stderr,
		`ERROR: unknown command \bogus: type \? for help`,
		`ERROR: duplicate key value violates unique constraint "band_pkey" (SQLSTATE 23505)`,
		"DETAIL: Key (id)=(1) already exists.",
		"ERROR: current transaction is aborted, commands ignored until end of transaction block (SQLSTATE 25P02)",
		`ERROR: savepoint "missing" does not exist (SQLSTATE 3B001)`,
		`ERROR: no transaction in progress: BEGIN; or \begin starts one`,
		`ERROR: usage: \batch N QUERY, with N at least 1`,
		"the session ended inside a transaction: it was rolled back",
	)
	for _, unwanted := range []string{"not run", "after quit", "piccolo=>"} {
		if strings.Contains(stdout, unwanted) {
			t.Errorf("stdout has %q:\n%s", unwanted, stdout)
		}
	}
	// The transaction left open at \q was rolled back.
	engine, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := engine.RunQuerystring(t.Context(), piccolo.Querystring{SQL: "SELECT count(*) AS n FROM band"})
	if err != nil || rows[0]["n"] != int64(3) {
		t.Errorf("bands after the session: %v, %v; want 3", rows, err)
	}
}

func TestShellUnterminatedStatement(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := runCLI(t, "SELECT 1;\nSELECT 2", "shell", "--dsn", pgtest.DSN(t))
	if code != exitOK || !strings.Contains(stdout, "(1 row)") || !strings.Contains(stderr, "no closing semicolon") {
		t.Errorf("exit %d, stdout %q, stderr %q; want the first statement run and the second reported", code, stdout, stderr)
	}
}

// newTestSession returns a shell session on the package's database, as
// the shell opens it, and its outputs; the test's end rolls back a
// transaction left open.
func newTestSession(t *testing.T) (*session, *strings.Builder, *strings.Builder) {
	t.Helper()
	return newTestSessionOn(t, pgtest.DSN(t))
}

// newTestSessionOn is newTestSession on the database at dsn.
func newTestSessionOn(t *testing.T, dsn string) (*session, *strings.Builder, *strings.Builder) {
	t.Helper()
	engine, conn, err := newShellEngine(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.StartConnectionPool(t.Context()); err != nil {
		t.Fatal(err)
	}
	out, errOut := &strings.Builder{}, &strings.Builder{}
	s := &session{engine: engine, conn: conn, out: out, errOut: errOut}
	t.Cleanup(func() {
		s.endTransaction(context.Background())
		engine.Close()
	})
	return s, out, errOut
}

// TestShellPrompt checks the prompt through a transaction's states.
func TestShellPrompt(t *testing.T) {
	t.Parallel()
	s, out, errOut := newTestSession(t)
	steps := []struct {
		line   string
		prompt string
	}{
		{"", "piccolo=> "},
		{"SELECT", "piccolo-> "},
		{"1;", "piccolo=> "},
		{`\begin`, "piccolo*> "},
		{"SELECT 1;", "piccolo*> "},
		{`\savepoint sp`, "piccolo*> "},
		{"SELECT 1/0;", "piccolo!> "},
		{"SELECT 1;", "piccolo!> "},
		{`\rollback_to nope`, "piccolo!> "},
		{`\rollback_to sp`, "piccolo*> "},
		{"SELECT 1/0;", "piccolo!> "},
		{"ROLLBACK;", "piccolo=> "},
		{"BEGIN;", "piccolo*> "},
		{"SELECT 1/0;", "piccolo!> "},
		{`\commit`, "piccolo=> "},
	}
	for i, st := range steps {
		if quit := s.handleLine(t.Context(), st.line); quit {
			t.Fatalf("line %d %q ended the session", i, st.line)
		}
		if got := s.prompt(); got != st.prompt {
			t.Fatalf("after line %d %q the prompt is %q, want %q; stderr:\n%s", i, st.line, got, st.prompt, errOut.String())
		}
	}
	if !strings.Contains(out.String(), "ROLLBACK\n") || !strings.Contains(errOut.String(), "rolled back") {
		t.Errorf("COMMIT of a failed transaction should report a rollback; stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	}
}
