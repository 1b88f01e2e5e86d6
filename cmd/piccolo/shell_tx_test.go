package main

import (
	"strings"
	"testing"

	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/pgtest"
)

func TestParseTxReadsEveryFormOrRefusesIt(t *testing.T) {
	t.Parallel()
	ser, rr, rc := piccolo.Serializable, piccolo.RepeatableRead, piccolo.ReadCommitted
	tests := []struct {
		sql     string
		want    txCommand
		refused string // a substring of the error; "" means accepted
	}{
		{"BEGIN", txCommand{action: txBegin, tag: "BEGIN"}, ""},
		{"begin work", txCommand{action: txBegin, tag: "BEGIN"}, ""},
		{"BEGIN TRANSACTION ISOLATION LEVEL SERIALIZABLE", txCommand{action: txBegin, tag: "BEGIN", mode: txMode{isolation: ser}}, ""},
		{"BEGIN ISOLATION LEVEL SERIALIZABLE", txCommand{action: txBegin, tag: "BEGIN", mode: txMode{isolation: ser}}, ""},
		{"begin isolation level repeatable read, read only", txCommand{action: txBegin, tag: "BEGIN", mode: txMode{isolation: rr, readOnly: true}}, ""},
		{"BEGIN READ ONLY ISOLATION LEVEL READ UNCOMMITTED NOT DEFERRABLE", txCommand{action: txBegin, tag: "BEGIN", mode: txMode{isolation: rc, readOnly: true}}, ""},
		{"START TRANSACTION", txCommand{action: txBegin, tag: "START TRANSACTION"}, ""},
		{"START TRANSACTION READ WRITE", txCommand{action: txBegin, tag: "START TRANSACTION"}, ""},
		{"start /* why not */ transaction isolation level read committed", txCommand{action: txBegin, tag: "START TRANSACTION", mode: txMode{isolation: rc}}, ""},
		{"COMMIT", txCommand{action: txCommit, tag: "COMMIT"}, ""},
		{"END TRANSACTION", txCommand{action: txCommit, tag: "COMMIT"}, ""},
		{"commit work and no chain", txCommand{action: txCommit, tag: "COMMIT"}, ""},
		{"COMMIT AND CHAIN", txCommand{action: txCommit, tag: "COMMIT", chain: true}, ""},
		{"ROLLBACK", txCommand{action: txRollback, tag: "ROLLBACK"}, ""},
		{"ABORT WORK", txCommand{action: txRollback, tag: "ROLLBACK"}, ""},
		{"ROLLBACK TRANSACTION AND CHAIN", txCommand{action: txRollback, tag: "ROLLBACK", chain: true}, ""},
		{"SAVEPOINT Sp1", txCommand{action: txSavepoint, name: "sp1"}, ""},
		{`SAVEPOINT "Sp1"`, txCommand{action: txSavepoint, name: "Sp1"}, ""},
		{"RELEASE sp1", txCommand{action: txRelease, name: "sp1"}, ""},
		{"RELEASE SAVEPOINT sp1", txCommand{action: txRelease, name: "sp1"}, ""},
		{"ROLLBACK TO sp1", txCommand{action: txRollbackTo, name: "sp1"}, ""},
		{"rollback work to savepoint sp1", txCommand{action: txRollbackTo, name: "sp1"}, ""},
		{"COMMIT PREPARED 'x'", txCommand{action: txPrepared}, ""},
		{"ROLLBACK PREPARED 'x'", txCommand{action: txPrepared}, ""},
		{"BEGIN DEFERRABLE", txCommand{}, "DEFERRABLE is not supported"},
		{"BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE", txCommand{}, "DEFERRABLE is not supported"},
		{"BEGIN ISOLATION LEVEL CHAOS", txCommand{}, `unknown isolation level "CHAOS"`},
		{"BEGIN READ ONLY READ WRITE", txCommand{}, "given twice"},
		{"BEGIN ATOMIC", txCommand{}, `unexpected "ATOMIC"`},
		{"START TRANSACTION; junk", txCommand{}, `unexpected ";"`},
		{"SAVEPOINT", txCommand{}, "savepoint name is missing"},
		{"PREPARE TRANSACTION 'x'", txCommand{}, "two-phase commit"},
	}
	for _, tt := range tests {
		got, err := parseTx(tt.sql)
		switch {
		case tt.refused == "" && err != nil:
			t.Errorf("parseTx(%q): %v", tt.sql, err)
		case tt.refused == "" && got != tt.want:
			t.Errorf("parseTx(%q) = %+v, want %+v", tt.sql, got, tt.want)
		case tt.refused != "" && (err == nil || !strings.Contains(err.Error(), tt.refused)):
			t.Errorf("parseTx(%q) = %+v, %v; want it refused with %q", tt.sql, got, err, tt.refused)
		}
	}
}

// shellStep is a line typed into a session and what must follow it.
type shellStep struct {
	line   string
	prompt string
	stdout string // a substring of what the line printed; "" checks nothing
	stderr string // a substring of its errors; "" means none
}

// runSteps types steps into s, checking the prompt and output after each.
func runSteps(t *testing.T, s *session, out, errOut *strings.Builder, steps []shellStep) {
	t.Helper()
	for i, st := range steps {
		out.Reset()
		errOut.Reset()
		if quit := s.handleLine(t.Context(), st.line); quit {
			t.Fatalf("line %d %q ended the session", i, st.line)
		}
		if got := s.prompt(); got != st.prompt {
			t.Fatalf("after line %d %q the prompt is %q, want %q; stdout:\n%s\nstderr:\n%s", i, st.line, got, st.prompt, out, errOut)
		}
		if !strings.Contains(out.String(), st.stdout) {
			t.Fatalf("after line %d %q stdout lacks %q:\n%s\nstderr:\n%s", i, st.line, st.stdout, out, errOut)
		}
		if st.stderr == "" && errOut.Len() > 0 || !strings.Contains(errOut.String(), st.stderr) {
			t.Fatalf("after line %d %q stderr is %q, want %q", i, st.line, errOut, st.stderr)
		}
	}
}

// TestShellTransactionControlTypedAsSQL: every form of BEGIN, COMMIT,
// ROLLBACK and savepoint typed as SQL runs the engine's transactions, with
// BEGIN's options, or is refused; nothing autocommits behind the prompt.
func TestShellTransactionControlTypedAsSQL(t *testing.T) {
	t.Parallel()
	s, out, errOut := newTestSession(t)
	runSteps(t, s, out, errOut, []shellStep{
		{"CREATE TABLE keep (id int PRIMARY KEY); INSERT INTO keep VALUES (1), (2);", "piccolo=> ", "INSERT 0 2", ""},
		// The case: DELETE then ROLLBACK after a BEGIN with options.
		{"BEGIN ISOLATION LEVEL SERIALIZABLE;", "piccolo*> ", "BEGIN", ""},
		{"SHOW transaction_isolation;", "piccolo*> ", "serializable", ""},
		{"DELETE FROM keep;", "piccolo*> ", "DELETE 2", ""},
		{"ROLLBACK;", "piccolo=> ", "ROLLBACK", ""},
		{"SELECT count(*) FROM keep;", "piccolo=> ", "     2\n", ""},
		{"START TRANSACTION READ ONLY, ISOLATION LEVEL REPEATABLE READ;", "piccolo*> ", "START TRANSACTION", ""},
		{"SHOW transaction_read_only;", "piccolo*> ", " on\n", ""},
		{"INSERT INTO keep VALUES (3);", "piccolo!> ", "", "(SQLSTATE 25006)"},
		{"COMMIT;", "piccolo=> ", "ROLLBACK", "rolled back"},
		{"begin work read write, not deferrable;", "piccolo*> ", "BEGIN", ""},
		{"INSERT INTO keep VALUES (3);", "piccolo*> ", "INSERT 0 1", ""},
		{`SAVEPOINT "Before4";`, "piccolo*> ", "SAVEPOINT Before4", ""},
		{"INSERT INTO keep VALUES (4);", "piccolo*> ", "INSERT 0 1", ""},
		{"INSERT INTO keep VALUES (4);", "piccolo!> ", "", "(SQLSTATE 23505)"},
		{`ROLLBACK TO SAVEPOINT "Before4";`, "piccolo*> ", "ROLLBACK", ""},
		{`RELEASE "Before4";`, "piccolo*> ", "RELEASE", ""},
		{"SAVEPOINT again; ROLLBACK TRANSACTION TO again;", "piccolo*> ", "ROLLBACK", ""},
		{"END;", "piccolo=> ", "COMMIT", ""},
		{"BEGIN ISOLATION LEVEL REPEATABLE READ;", "piccolo*> ", "BEGIN", ""},
		{"INSERT INTO keep VALUES (5);", "piccolo*> ", "INSERT 0 1", ""},
		{"COMMIT AND CHAIN;", "piccolo*> ", "COMMIT\nBEGIN\n", ""},
		{"SHOW transaction_isolation;", "piccolo*> ", "repeatable read", ""},
		{"DELETE FROM keep;", "piccolo*> ", "DELETE 4", ""},
		{"ABORT AND CHAIN;", "piccolo*> ", "ROLLBACK\nBEGIN\n", ""},
		{"ABORT;", "piccolo=> ", "ROLLBACK", ""},
		{"SELECT count(*) FROM keep;", "piccolo=> ", "     4\n", ""},
		// Refused, and nothing begun.
		{"BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE;", "piccolo=> ", "", "DEFERRABLE is not supported"},
		{"PREPARE TRANSACTION 'x';", "piccolo=> ", "", "two-phase commit"},
		{"SAVEPOINT a;", "piccolo=> ", "", "no transaction in progress"},
		{"COMMIT;", "piccolo=> ", "COMMIT", "WARNING: there is no transaction in progress"},
		{`\begin isolation level serializable`, "piccolo*> ", "BEGIN", ""},
		{"BEGIN;", "piccolo*> ", "", "WARNING: there is already a transaction in progress"},
		{"SHOW transaction_isolation;", "piccolo*> ", "serializable", ""},
		{"COMMIT PREPARED 'x';", "piccolo*> ", "", "ends the transaction"},
		{`\rollback`, "piccolo=> ", "ROLLBACK", ""},
	})
}

// TestShellSessionStateStaysOnOneConnection: what a user sets in the
// session (SET, a temporary table, a prepared statement) lasts across
// statements and transactions, since the whole session is one connection.
func TestShellSessionStateStaysOnOneConnection(t *testing.T) {
	t.Parallel()
	script := `SELECT pg_backend_pid() AS pid;
SET application_name = 'shell_state';
CREATE TEMP TABLE scratch (v int);
INSERT INTO scratch VALUES (1);
PREPARE two AS SELECT 2 AS two;
BEGIN;
INSERT INTO scratch VALUES (2);
EXECUTE two;
SET LOCAL work_mem = '1MB';
COMMIT;
SHOW application_name;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT count(*) AS rows FROM scratch;
ROLLBACK;
SELECT 1/0;
SELECT pg_backend_pid() AS pid;
`
	stdout, stderr := runCLIOK(t, script, "shell", pgtest.DSN(t))
	checkOutput(t, "stdout", stdout, " two\n-----\n   2\n", " application_name\n------------------\n shell_state\n", " rows\n------\n    2\n")
	pids := strings.Split(stdout, " pid\n")
	if len(pids) != 3 || pids[1][:strings.Index(pids[1], "(1 row)")] != pids[2][:strings.Index(pids[2], "(1 row)")] {
		t.Errorf("the session changed connections:\n%s", stdout)
	}
	if strings.Count(stderr, "ERROR") != 1 {
		t.Errorf("stderr should hold the division by zero only:\n%s", stderr)
	}
}

// TestShellSaysWhenTheSessionStateIsLost: when the connection dies, the
// pool opens a new one for the next statement, and the shell says that
// the session state went with the old one.
func TestShellSaysWhenTheSessionStateIsLost(t *testing.T) {
	t.Parallel()
	script := "SET application_name = 'before';\nSELECT pg_terminate_backend(pg_backend_pid());\nSHOW application_name;\n"
	code, stdout, stderr := runCLI(t, script, "shell", pgtest.DSN(t))
	if code != exitOK || strings.Contains(stdout, "before") {
		t.Errorf("exit %d, stdout:\n%s", code, stdout)
	}
	if !strings.Contains(stderr, "(SQLSTATE 57P01)") || !strings.Contains(stderr, "WARNING: the connection to the server was lost") {
		t.Errorf("stderr does not report the lost session:\n%s", stderr)
	}
}
