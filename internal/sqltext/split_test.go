package sqltext

import (
	"slices"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
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
		{"semicolon in parentheses", "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2)); SELECT 1;",
			[]string{"CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2))", "SELECT 1"}, ""},
		{"begin atomic body", "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; SELECT 2; END; COMMIT;",
			[]string{"CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; SELECT 2; END", "COMMIT"}, ""},
		{"begin atomic procedure", "CREATE PROCEDURE p() BEGIN ATOMIC INSERT INTO t VALUES (1); END;", []string{"CREATE PROCEDURE p() BEGIN ATOMIC INSERT INTO t VALUES (1); END"}, ""},
		{"begin outside a routine", "BEGIN; SELECT 1; END;", []string{"BEGIN", "SELECT 1", "END"}, ""},
		{"open begin atomic", "CREATE FUNCTION f() RETURNS int BEGIN ATOMIC SELECT 1;", nil, "CREATE FUNCTION f() RETURNS int BEGIN ATOMIC SELECT 1;"},
	}
	for _, tt := range tests {
		stmts, rest := Split(tt.text)
		if !slices.Equal(stmts, tt.stmts) || rest != tt.rest {
			t.Errorf("%s: Split(%q) = %q, %q; want %q, %q", tt.name, tt.text, stmts, rest, tt.stmts, tt.rest)
		}
	}
}

func FuzzSplit(f *testing.F) {
	for _, s := range []string{"SELECT 1;", "SELECT 'a;b'; --x\n", "$a$;$a$;", "/* /* */;", `E'\';'`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		stmts, rest := Split(text)
		for _, s := range stmts {
			if s == "" {
				t.Errorf("empty statement from %q", text)
			}
		}
		if len(rest) > len(text) {
			t.Errorf("rest %q longer than the input %q", rest, text)
		}
		// Statements come out in order, each a piece of the text.
		at := 0
		for _, s := range Statements(text) {
			i := strings.Index(text[at:], s)
			if i < 0 {
				t.Fatalf("statement %q of %q not found in order", s, text)
			}
			at += i + len(s)
			_ = Control(s)
		}
		_ = IsData(text)
	})
}
