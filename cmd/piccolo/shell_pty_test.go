//go:build linux || darwin

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo/pgtest"
)

// terminal is a process running on a pseudo-terminal, and what it wrote.
type terminal struct {
	t      *testing.T
	ptmx   *os.File
	mu     sync.Mutex
	output bytes.Buffer
	seen   int           // output before this was matched by expect
	wrote  chan struct{} // signalled on each read
	done   chan struct{} // closed when the output ends
}

// startTerminal runs piccolo with args on a new pseudo-terminal.
func startTerminal(t *testing.T, args ...string) (*terminal, *exec.Cmd) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1", "HOME="+t.TempDir(), "TERM=dumb", "NO_COLOR=1")
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 200})
	if err != nil {
		t.Fatal(err)
	}
	term := &terminal{t: t, ptmx: ptmx, wrote: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(term.done)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			term.mu.Lock()
			term.output.Write(buf[:n])
			term.mu.Unlock()
			select {
			case term.wrote <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		ptmx.Close()
		<-term.done
	})
	return term, cmd
}

// expect waits for want in the output after the last match.
func (term *terminal) expect(want string) {
	term.t.Helper()
	timeout := time.After(time.Minute)
	for {
		term.mu.Lock()
		rest := term.output.String()[term.seen:]
		if i := strings.Index(rest, want); i >= 0 {
			term.seen += i + len(want)
			term.mu.Unlock()
			return
		}
		term.mu.Unlock()
		select {
		case <-term.wrote:
		case <-term.done:
			term.t.Fatalf("the output ended without %q; after the last match:\n%s", want, rest)
		case <-timeout:
			term.t.Fatalf("no %q after a minute; after the last match:\n%s", want, rest)
		}
	}
}

// send types s.
func (term *terminal) send(s string) {
	term.t.Helper()
	if _, err := io.WriteString(term.ptmx, s); err != nil {
		term.t.Fatal(err)
	}
}

// TestShellCtrlCOnATerminal drives the shell on a real pseudo-terminal:
// Ctrl-C during a statement in an open transaction cancels the statement
// and keeps the session, whose transaction is then failed (piccolo!>) and
// rolls back; Ctrl-C at the prompt clears the line; \q leaves with 0.
func TestShellCtrlCOnATerminal(t *testing.T) {
	t.Parallel()
	dsn := pgtest.DSN(t)
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	term, cmd := startTerminal(t, "shell", dsn)
	term.expect("piccolo shell: PostgreSQL ")
	term.expect(fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)) // the banner names the session
	term.expect("piccolo=> ")
	term.send("CREATE TABLE on_tty (id int);\r")
	term.expect("CREATE TABLE\r\n")
	term.send("BEGIN;\r")
	term.expect("BEGIN\r\n")
	term.expect("piccolo*> ")
	term.send("INSERT INTO on_tty VALUES (1);\r")
	term.expect("INSERT 0 1\r\n")
	const sleep = "SELECT pg_sleep(30) AS on_tty"
	term.send(sleep + ";\r")
	waitForQuery(t, dsn, sleep)
	start := time.Now()
	term.send("\x03") // Ctrl-C, which the terminal turns into SIGINT
	term.expect("Cancel request sent")
	term.expect("ERROR: canceling statement due to user request (SQLSTATE 57014)")
	term.expect("piccolo!> ")
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("the cancel took %v", took)
	}
	term.send("SELECT 1;\r")
	term.expect("current transaction is aborted")
	term.expect("piccolo!> ")
	term.send("ROLLBACK;\r")
	term.expect("ROLLBACK\r\n")
	term.expect("piccolo=> ")
	term.send("SELECT count(*) AS rows_left FROM on_tty;\r")
	term.expect(" rows_left\r\n-----------\r\n         0\r\n(1 row)")
	// Ctrl-C at the prompt: the continued statement is dropped.
	term.send("SELECT 'dropped'\r")
	term.expect("piccolo-> ")
	term.send("\x03")
	term.expect("piccolo=> ")
	term.send("SELECT 'kept' AS after_clear;\r")
	term.expect(" after_clear\r\n-------------\r\n kept\r\n(1 row)")
	term.send("\\q\r")
	err = cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) || err != nil {
		t.Errorf("the shell ended with %v, want exit status 0", err)
	}
}
