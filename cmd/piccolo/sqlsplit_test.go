package main

import (
	"slices"
	"testing"
)

func TestSplitStatements(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		text  string
		stmts []string
		rest  string
	}{
		{"empty", "", nil, ""},
		{"incomplete", "SELECT 1", nil, "SELECT 1"},
		{"one", "SELECT 1;", []string{"SELECT 1"}, ""},
		{"two and a rest", "SELECT 1; SELECT 2;\nSELECT", []string{"SELECT 1", "SELECT 2"}, "\nSELECT"},
		{"empty statements dropped", ";; SELECT 1 ;;", []string{"SELECT 1"}, ""},
		{"multi-line", "SELECT\n  1\n;", []string{"SELECT\n  1"}, ""},
		{"semicolon in string", "SELECT 'a;b';", []string{"SELECT 'a;b'"}, ""},
		{"doubled quote", "SELECT 'it''s;';", []string{"SELECT 'it''s;'"}, ""},
		{"open string", "SELECT 'a;\nb", nil, "SELECT 'a;\nb"},
		{"escape string", `SELECT E'a\';b';`, []string{`SELECT E'a\';b'`}, ""},
		{"backslash in standard string", `SELECT 'a\'; SELECT 2;`, []string{`SELECT 'a\'`, "SELECT 2"}, ""},
		{"quoted identifier", `SELECT 1 AS "x;y";`, []string{`SELECT 1 AS "x;y"`}, ""},
		{"dollar quote", "SELECT $$a;b$$;", []string{"SELECT $$a;b$$"}, ""},
		{"tagged dollar quote", "DO $body$ BEGIN PERFORM 1; END $body$;", []string{"DO $body$ BEGIN PERFORM 1; END $body$"}, ""},
		{"open dollar quote", "SELECT $x$;", nil, "SELECT $x$;"},
		{"parameter is no quote", "SELECT $1; SELECT 2;", []string{"SELECT $1", "SELECT 2"}, ""},
		{"dollar inside identifier", "SELECT a$b; SELECT 2;", []string{"SELECT a$b", "SELECT 2"}, ""},
		{"line comment", "SELECT 1 -- no;\n;", []string{"SELECT 1 -- no;"}, ""},
		{"comment alone is no statement", "-- just a comment;\n", nil, ""},
		{"open line comment after statement", "SELECT 1; -- done", []string{"SELECT 1"}, ""},
		{"block comment", "SELECT /* ; */ 1;", []string{"SELECT /* ; */ 1"}, ""},
		{"nested block comment", "SELECT /* a /* ; */ ; */ 1;", []string{"SELECT /* a /* ; */ ; */ 1"}, ""},
		{"open block comment", "SELECT 1 /* ;", nil, "SELECT 1 /* ;"},
		{"comment-only statement", "/* x */;SELECT 1;", []string{"SELECT 1"}, ""},
	}
	for _, tt := range tests {
		stmts, rest := splitStatements(tt.text)
		if !slices.Equal(stmts, tt.stmts) || rest != tt.rest {
			t.Errorf("%s: splitStatements(%q) = %q, %q; want %q, %q", tt.name, tt.text, stmts, rest, tt.stmts, tt.rest)
		}
	}
}

func FuzzSplitStatements(f *testing.F) {
	for _, s := range []string{"SELECT 1;", "SELECT 'a;b'; --x\n", "$a$;$a$;", "/* /* */;", `E'\';'`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		stmts, rest := splitStatements(text)
		for _, s := range stmts {
			if s == "" {
				t.Errorf("empty statement from %q", text)
			}
		}
		if len(rest) > len(text) {
			t.Errorf("rest %q longer than the input %q", rest, text)
		}
	})
}

func TestTxControl(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"BEGIN": "begin", "begin work": "begin", "Begin Transaction": "begin", "START TRANSACTION": "begin",
		"COMMIT": "commit", "end": "commit", "commit work": "commit",
		"ROLLBACK": "rollback", "abort": "rollback", "rollback transaction": "rollback",
		"ROLLBACK TO SAVEPOINT a": "", "rollback to a": "", "BEGIN ISOLATION LEVEL SERIALIZABLE": "",
		"start": "", "SELECT 1": "", "": "", "commit and chain": "",
	}
	for sql, want := range tests {
		if got := txControl(sql); got != want {
			t.Errorf("txControl(%q) = %q, want %q", sql, got, want)
		}
	}
}

func TestReturnsRows(t *testing.T) {
	t.Parallel()
	tests := map[string]bool{
		"SELECT 1": true, "select\n1": true, "(SELECT 1) UNION (SELECT 2)": true, "WITH x AS (SELECT 1) SELECT * FROM x": true,
		"VALUES (1)": true, "TABLE band": true, "SHOW search_path": true, "EXPLAIN SELECT 1": true,
		"INSERT INTO t VALUES (1) RETURNING id": true, "INSERT INTO t VALUES (1)": false,
		"CREATE TABLE t (id int)": false, "UPDATE t SET a = 1": false, "DELETE FROM t": false,
	}
	for sql, want := range tests {
		if got := returnsRows(sql); got != want {
			t.Errorf("returnsRows(%q) = %v, want %v", sql, got, want)
		}
	}
}
