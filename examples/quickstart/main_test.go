package main

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/piccolo-go/piccolo/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestQuickStartRuns pins that the README's first program works as shown:
// run on an empty database, it creates the table, commits two bands and
// prints them.
func TestQuickStartRuns(t *testing.T) {
	t.Setenv("DATABASE_URL", pgtest.DSN(t))
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	defer func() { os.Stdout = stdout }()
	main()
	w.Close()
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "[{1 Pythonistas} {2 Rustaceans}] <nil>\n"; got != want {
		t.Errorf("quickstart printed %q, want %q", got, want)
	}
}

// TestReadmeShowsQuickStartVerbatim pins that the README's quick start is
// this program, byte for byte, so that copying it from the README works.
func TestReadmeShowsQuickStartVerbatim(t *testing.T) {
	program, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := append(append([]byte("```go\n"), program...), "```\n"...)
	if !bytes.Contains(readme, block) {
		t.Errorf("README.md does not show examples/quickstart/main.go verbatim in a ```go block; paste it again:\n%s",
			strings.TrimSpace(string(program)))
	}
}
