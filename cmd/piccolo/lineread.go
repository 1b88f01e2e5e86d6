package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/chzyer/readline"
)

// errInterrupted is returned by a lineReader when the user pressed Ctrl-C
// at the prompt: the statement being typed is dropped, the session goes on.
var errInterrupted = errors.New("interrupted")

// lineReader reads the shell's input a line at a time; io.EOF ends it.
type lineReader interface {
	readLine(prompt string) (string, error)
	close() error
}

// plainReader reads lines from a non-terminal (a pipe, a file, a test's
// script) without prompts or editing.
type plainReader struct {
	sc *bufio.Scanner
}

// newPlainReader reads lines from r.
func newPlainReader(r io.Reader) *plainReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20) // long statements: up to 16 MiB a line
	return &plainReader{sc: sc}
}

// readLine returns the next line; the prompt is not shown.
func (p *plainReader) readLine(string) (string, error) {
	if p.sc.Scan() {
		return p.sc.Text(), nil
	}
	if err := p.sc.Err(); err != nil {
		return "", fmt.Errorf("read input: %w", err)
	}
	return "", io.EOF
}

// close does nothing: the reader does not own its input.
func (p *plainReader) close() error { return nil }

// termReader reads lines from a terminal with line editing and history,
// kept in ~/.piccolo_history.
type termReader struct {
	rl *readline.Instance
}

// newTermReader puts line editing on the terminal stdin.
func newTermReader(stdin *os.File, stdout, stderr io.Writer) (*termReader, error) {
	var history string
	if home, err := os.UserHomeDir(); err == nil {
		history = filepath.Join(home, ".piccolo_history")
	}
	rl, err := readline.NewEx(&readline.Config{
		HistoryFile:       history,
		HistorySearchFold: true,
		Stdin:             stdin,
		Stdout:            stdout,
		Stderr:            stderr,
	})
	if err != nil {
		return nil, fmt.Errorf("set up line editing: %w", err)
	}
	return &termReader{rl: rl}, nil
}

// readLine shows prompt and returns the line typed, errInterrupted for
// Ctrl-C and io.EOF for Ctrl-D on an empty line.
func (t *termReader) readLine(prompt string) (string, error) {
	t.rl.SetPrompt(prompt)
	line, err := t.rl.Readline()
	if errors.Is(err, readline.ErrInterrupt) {
		return "", errInterrupted
	}
	return line, err
}

// close restores the terminal and saves the history.
func (t *termReader) close() error { return t.rl.Close() }

// readLineContext reads a line unless ctx ends first. A read still
// blocked then is left to the reader's close (or the process's exit).
func readLineContext(ctx context.Context, r lineReader, prompt string) (string, error) {
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		line, err := r.readLine(prompt)
		ch <- result{line, err}
	}()
	select {
	case res := <-ch:
		return res.line, res.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}
