package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piccolo-go/piccolo/pgtest"
)

// writeScript writes a script file in a temporary directory.
func writeScript(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestShellScriptsStopAtTheFirstErrorWithOnErrorStop: -c and -f run and
// exit; without ON_ERROR_STOP a script goes on after an error (exit 0, a
// failed -c exits 1), with it (-v ON_ERROR_STOP=1 or -S) the script stops
// there, its open transaction is rolled back, and the exit status is 3.
func TestShellScriptsStopAtTheFirstErrorWithOnErrorStop(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t)
	code, _, stderr := runCLI(t, "", "shell", "-c", "CREATE TABLE ledger (n int)", dsn)
	if code != exitOK {
		t.Fatalf("CREATE TABLE: exit %d; stderr:\n%s", code, stderr)
	}
	script := writeScript(t, "script.sql", "BEGIN;\nINSERT INTO ledger VALUES (1);\nSELECT 1/0;\nINSERT INTO ledger VALUES (2);\nCOMMIT;\nSELECT 'after the error' AS went_on;\n")
	include := writeScript(t, "include.sql", `\i `+script+"\nSELECT 'after the include' AS went_on;\n")
	tests := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout string // a substring
		absent string // not in stdout
		stderr string // a substring
	}{
		{"-c without semicolon", "", []string{"-c", "SELECT 1 AS one"}, exitOK, " one\n-----\n   1\n", "", ""},
		{"-c meta-command", "", []string{"-c", `\dt`}, exitOK, "ledger", "", ""},
		{"failing -c", "", []string{"-c", "SELECT 1/0", "-c", "SELECT 2 AS two"}, exitFailure, " two\n", "", "division by zero"},
		{"-S stops -c", "", []string{"-S", "-c", "SELECT 1/0", "-c", "SELECT 2 AS two"}, exitScriptError, "", "two", "division by zero"},
		{"-f goes on", "", []string{"-f", script}, exitOK, "after the error", "", "current transaction is aborted"},
		{"-f stops", "", []string{"-v", "ON_ERROR_STOP=1", "-f", script}, exitScriptError, "INSERT 0 1", "after the error", "the session ended inside a transaction: it was rolled back"},
		{"stdin stops", "SELECT 'first' AS f;\nSELECT nope;\nSELECT 'second' AS s;\n", []string{"-S"}, exitScriptError, "first", "second", `column "nope" does not exist`},
		{"-f - reads stdin", "SELECT 'from stdin' AS s;\n", []string{"-f", "-"}, exitOK, "from stdin", "", ""},
		{`\i stops the script that included it`, "", []string{"-S", "-f", include}, exitScriptError, "INSERT 0 1", "after the include", "division by zero"},
		{`\i goes on`, "", []string{"-f", include}, exitOK, "after the include", "", "division by zero"},
		{"missing file", "", []string{"-f", filepath.Join(t.TempDir(), "none.sql")}, exitFailure, "", "", "no such file"},
		{"help", "help\nSELECT 1 AS one;\n", nil, exitOK, `\? for help`, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.stdin, append(append([]string{"shell"}, tt.args...), dsn)...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if !strings.Contains(stdout, tt.stdout) || tt.absent != "" && strings.Contains(stdout, tt.absent) {
				t.Errorf("stdout should have %q and not %q:\n%s", tt.stdout, tt.absent, stdout)
			}
			if !strings.Contains(stderr, tt.stderr) || tt.stderr == "" && stderr != "" {
				t.Errorf("stderr = %q, want %q", stderr, tt.stderr)
			}
		})
	}
	// The stopped scripts committed nothing; the ones that went on
	// committed nothing either (their COMMIT came after the error).
	_, stdout, _ := runCLI(t, "", "shell", "-c", "SELECT count(*) AS n FROM ledger", dsn)
	if !strings.Contains(stdout, " n\n---\n 0\n") {
		t.Errorf("rows left in ledger:\n%s", stdout)
	}
}

// TestShellDSNArgument: the DSN may be given as an argument, a URL,
// key=value or a database name (the rest from PG* variables).
func TestShellDSNArgument(t *testing.T) {
	t.Parallel()
	for _, dsn := range []string{"postgres", "dbname=postgres", pgtest.DSN(t)} {
		code, stdout, stderr := runCLI(t, "", "shell", "-c", "SELECT current_database() = 'postgres' OR current_database() LIKE 'pgtest%' AS right_db", dsn)
		if code != exitOK || !strings.Contains(stdout, " true\n") {
			t.Errorf("shell %s: exit %d, stdout %q, stderr %q", dsn, code, stdout, stderr)
		}
	}
	code, stdout, _ := runCLI(t, "", "shell", "-c", "SELECT current_database() AS db", "postgres")
	if code != exitOK || !strings.Contains(stdout, " postgres\n") {
		t.Errorf("a database name as the argument: %q", stdout)
	}
}

// TestShellDescribesLikePsql: \d, \dt, \d NAME (columns, types,
// nullability, defaults, indexes, foreign keys), \dn, \l, \x, and the
// command tag of INSERT ... RETURNING after its rows.
func TestShellDescribesLikePsql(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t)
	script := `CREATE TABLE manager (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE band (id serial PRIMARY KEY, name varchar(50) NOT NULL DEFAULT 'unnamed', manager int REFERENCES manager (id), popularity int CHECK (popularity >= 0));
CREATE INDEX band_name ON band (name);
CREATE VIEW popular AS SELECT * FROM band WHERE popularity > 10;
INSERT INTO manager (name) VALUES ('Guido') RETURNING id, name;
\d
\dt
\d band
\d nowhere
\dn
\l
\x
SELECT id, name FROM manager;
\x off
BEGIN;
\d manager
SELECT 'still in the transaction' AS ok;
COMMIT;
`
	stdout, stderr := runCLIOK(t, script, "shell", dsn)
	checkOutput(t, "stdout", stdout,
		" id | name\n----+-------\n  1 | Guido\n(1 row)\n\nINSERT 0 1\n",
		"List of relations\n Schema |      Name      |   Type   |  Owner\n",
		" public | band_id_seq    | sequence | ",
		" public | popular        | view     | ",
		"List of tables\n",
		`Table "public.band"`,
		" id         | integer               | not null | nextval('band_id_seq'::regclass)\n",
		" name       | character varying(50) | not null | 'unnamed'::character varying\n",
		" manager    | integer               |          |\n",
		"Indexes:\n    \"band_pkey\" PRIMARY KEY, btree (id)\n    \"band_name\" btree (name)\n",
		"Check constraints:\n    \"band_popularity_check\" CHECK ((popularity >= 0))\n",
		"Foreign-key constraints:\n    \"band_manager_fkey\" FOREIGN KEY (manager) REFERENCES manager(id)\n",
		"List of schemas\n  Name  |       Owner\n",
		"List of databases\n",
		"Expanded display is on.\n-[ RECORD 1 ]-\n", "id   | 1\nname | Guido\n",
		`Table "public.manager"`, " id     | integer | not null | generated always as identity\n",
		"Referenced by:\n    TABLE band CONSTRAINT \"band_manager_fkey\" FOREIGN KEY (manager) REFERENCES manager(id)\n",
		"still in the transaction",
	)
	if strings.Count(stdout, "List of tables") != 1 || strings.Contains(stdout[strings.Index(stdout, "List of tables"):strings.Index(stdout, `Table "public.band"`)], "popular") {
		t.Errorf(`\dt lists more than tables:\n%s`, stdout)
	}
	if !strings.Contains(stderr, `did not find any relation named "nowhere"`) || strings.Count(stderr, "ERROR") != 1 {
		t.Errorf("stderr:\n%s", stderr)
	}
}
