package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/piccolo-go/piccolo/pgtest"
)

// runMainEnv, set in a test binary's environment, makes it run the command
// instead of the tests: tests that need a real process (a terminal,
// signals) run the test binary itself as piccolo.
const runMainEnv = "PICCOLO_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
	}
	pgtest.Main(m)
}

// runCLI runs the command in-process with stdin and returns its exit code,
// standard output and standard error.
func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCLIContext(t.Context(), stdin, args...)
}

// runCLIContext is runCLI with the context run gets: cancelling it is the
// CLI's Ctrl-C.
func runCLIContext(ctx context.Context, stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(ctx, args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// runCLIOK is runCLI for a run that must succeed: it fails the test unless
// the CLI exits 0.
func runCLIOK(t *testing.T, stdin string, args ...string) (stdout, stderr string) {
	t.Helper()
	code, stdout, stderr := runCLI(t, stdin, args...)
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s\nstdout:\n%s", code, stderr, stdout)
	}
	return stdout, stderr
}

// checkOutput reports each of wants that got, the output called name,
// lacks; a want of "" means got must be empty.
func checkOutput(t *testing.T, name, got string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if want == "" && got != "" {
			t.Errorf("%s = %q, want it empty", name, got)
		}
		if !strings.Contains(got, want) {
			t.Errorf("%s lacks %q:\n%s", name, want, got)
		}
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // a substring; "" means stdout must be empty
		wantStderr string // a substring; "" means stderr must be empty
	}{
		{"no command", nil, exitUsage, "", "Usage:"},
		{"help flag", []string{"--help"}, exitOK, "Commands:", ""},
		{"help command", []string{"help"}, exitOK, "playground", ""},
		{"help playground", []string{"help", "playground"}, exitOK, "Usage: piccolo playground", ""},
		{"help unknown", []string{"help", "nope"}, exitUsage, "", `unknown command "nope"`},
		{"unknown command", []string{"nope"}, exitUsage, "", `unknown command "nope"`},
		{"playground help", []string{"playground", "-h"}, exitOK, "--rows", ""},
		{"playground bad flag", []string{"playground", "--bogus"}, exitUsage, "", "flag provided but not defined: -bogus"},
		{"playground no rows", []string{"playground", "--rows", "0"}, exitUsage, "", "--rows must be between 1 and 2147483647, got 0"},
		{"playground too many rows", []string{"playground", "--rows", "2147483648"}, exitUsage, "", "--rows must be between 1"},
		{"playground extra argument", []string{"playground", "walk"}, exitUsage, "", `unexpected argument "walk"`},
		{"playground flag after argument", []string{"playground", "run", "--rows", "5"}, exitUsage, "", `unexpected argument "5"`},
		{"shell help", []string{"shell", "--help"}, exitOK, `\batch`, ""},
		{"shell extra argument", []string{"shell", "db", "other"}, exitUsage, "", `unexpected argument "other"`},
		{"shell DSN twice", []string{"shell", "--dsn", "postgres://x", "db"}, exitUsage, "", `the DSN is given twice`},
		{"shell unknown variable", []string{"shell", "-v", "ECHO=all"}, exitUsage, "", `want ON_ERROR_STOP=1`},
		{"shell help lists flags", []string{"shell", "-h"}, exitOK, "ON_ERROR_STOP", ""},
		{"version flag", []string{"--version"}, exitOK, "piccolo ", ""},
		{"version short flag", []string{"-V"}, exitOK, "piccolo ", ""},
		{"version", []string{"version"}, exitOK, "piccolo ", ""},
		{"version extra argument", []string{"version", "x"}, exitUsage, "", `unexpected argument "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runCLI(t, "", tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			checkOutput(t, "stdout", stdout, tt.wantStdout)
			checkOutput(t, "stderr", stderr, tt.wantStderr)
		})
	}
}

func TestReadAnswer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		input  string
		want   string
		wantOK bool
		rest   string
	}{
		{"\n", "", true, ""},
		{" Yes \nSELECT 1;\n", "yes", true, "SELECT 1;\n"},
		{"n\n", "n", true, ""},
		{"y", "", false, ""},
		{"", "", false, ""},
	}
	for _, tt := range tests {
		r := strings.NewReader(tt.input)
		got, ok := readAnswer(r)
		rest, _ := io.ReadAll(r)
		if got != tt.want || ok != tt.wantOK || string(rest) != tt.rest {
			t.Errorf("readAnswer(%q) = %q, %v, rest %q; want %q, %v, rest %q", tt.input, got, ok, rest, tt.want, tt.wantOK, tt.rest)
		}
	}
}

func TestTourStopsAtFailingStep(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	tr := &tour{out: &out, sql: newSQLPrinter(t.Context(), &out, style{})}
	ran := 0
	steps := []step{
		{"First", "works", func(context.Context, *tour) (string, error) { ran++; return "fine", nil }},
		{"Second", "breaks", func(context.Context, *tour) (string, error) { ran++; return "", io.ErrUnexpectedEOF }},
		{"Third", "never runs", func(context.Context, *tour) (string, error) { ran++; return "fine", nil }},
	}
	err := tr.run(t.Context(), steps, 0, 3)
	if err == nil || !strings.Contains(err.Error(), `step 2/3 "Second" did not behave as expected: unexpected EOF`) {
		t.Fatalf("run returned %v, want the second step named", err)
	}
	if ran != 2 {
		t.Errorf("%d steps ran, want 2", ran)
	}
	checkOutput(t, "output", out.String(), "1/3  First", "✓ fine", "2/3  Second", "✗ unexpected EOF")
}
