package piccolo

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzSavepointName(f *testing.F) {
	for _, seed := range []string{"a", "savepoint_1", "", "1x", `x"y`, "x;y", strings.Repeat("z", 64), "é", "_"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		// The rule, written differently: [A-Za-z_][A-Za-z0-9_]{0,62}.
		valid := len(name) > 0 && len(name) <= 63
		for i, r := range name {
			if !valid {
				break
			}
			valid = r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || (i > 0 && '0' <= r && r <= '9')
		}
		err := validSavepointName(name)
		if valid != (err == nil) {
			t.Fatalf("validSavepointName(%q) = %v, want valid=%v", name, err, valid)
		}
		if err != nil && !errors.Is(err, ErrInvalidSavepointName) {
			t.Fatalf("error %v is not ErrInvalidSavepointName", err)
		}
	})
}

func FuzzQuoteIdentifier(f *testing.F) {
	for _, seed := range []string{"band", `a"b`, `""`, "Select", "x; DROP TABLE y; --", "ünï", "a\x00b", ""} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		q, err := QuoteIdentifier(name)
		if name == "" || strings.IndexByte(name, 0) >= 0 || !utf8.ValidString(name) || len(name) > 63 {
			if !errors.Is(err, ErrInvalidIdentifier) {
				t.Fatalf("QuoteIdentifier(%q) = %v, want ErrInvalidIdentifier", name, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("QuoteIdentifier(%q): %v", name, err)
		}
		// Unquoting gives back the name, and no lone quote ends it early.
		if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' {
			t.Fatalf("%q is not enclosed in quotes", q)
		}
		inner := q[1 : len(q)-1]
		if strings.Contains(strings.ReplaceAll(inner, `""`, ""), `"`) {
			t.Fatalf("%q has an unescaped quote", q)
		}
		if got := strings.ReplaceAll(inner, `""`, `"`); got != name {
			t.Fatalf("unquoted %q, want %q", got, name)
		}
	})
}

func TestQuoteIdentifier(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, want string
	}{
		{"band", `"band"`},
		{"Band", `"Band"`},
		{"select", `"select"`},
		{"user", `"user"`},
		{`a"b`, `"a""b"`},
		{`"`, `""""`},
		{"x; DROP TABLE band; --", `"x; DROP TABLE band; --"`},
		{"a--b", `"a--b"`},
		{"/* c */", `"/* c */"`},
		{"bänd", `"bänd"`},
		{"楽団", `"楽団"`},
		{"has space", `"has space"`},
		{"$1", `"$1"`},
		{"'quoted'", `"'quoted'"`},
		{strings.Repeat("a", 63), `"` + strings.Repeat("a", 63) + `"`},
	}
	for _, tt := range tests {
		got, err := QuoteIdentifier(tt.name)
		if err != nil || got != tt.want {
			t.Errorf("QuoteIdentifier(%q) = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

func TestQuoteIdentifierRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, msg string
	}{
		{"", "empty"},
		{"a\x00b", "NUL"},
		{"\xff", "not valid UTF-8"},
		{strings.Repeat("a", 64), "longer than 63 bytes"},
		{strings.Repeat("é", 32), "longer than 63 bytes"},
	}
	for _, tt := range tests {
		_, err := QuoteIdentifier(tt.name)
		if !errors.Is(err, ErrInvalidIdentifier) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("QuoteIdentifier(%q) error = %v; want ErrInvalidIdentifier mentioning %q", tt.name, err, tt.msg)
		}
	}
}
