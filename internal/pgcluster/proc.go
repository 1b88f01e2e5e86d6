package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// owner is the OS user that runs initdb, pg_ctl and the server when this
// process is root (initdb and postgres refuse to run as root).
type owner struct {
	name     string
	uid, gid uint32
}

// serverOwner returns nil when the current user can run the server, and the
// "postgres" OS user when running as root.
func serverOwner() (*owner, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: running as root, and PostgreSQL refuses to run as root; "+
			"look up OS user postgres to run it as (apt-get install postgresql creates it): %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: uid of OS user postgres: %w", err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: gid of OS user postgres: %w", err)
	}
	return &owner{name: u.Username, uid: uint32(uid), gid: uint32(gid)}, nil
}

// sysProcAttr makes a child process run as o (nil: as this process's user).
// Setpgid keeps a terminal's Ctrl-C, meant for the test process, away from
// the child: pgcluster's own cleanup decides when servers stop.
func (o *owner) sysProcAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true}
	if o != nil {
		attr.Credential = &syscall.Credential{Uid: o.uid, Gid: o.gid, Groups: []uint32{}}
	}
	return attr
}

// give hands dir to o and makes every directory above it searchable by
// others, so that o can reach it (os.MkdirTemp's parent may be a 0700
// directory of root's, such as a test's t.TempDir()). It only adds the
// search bit; no directory becomes readable or writable by others.
func (o *owner) give(dir string) error {
	if o == nil {
		return nil
	}
	if err := o.chown(dir); err != nil {
		return err
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("pgcluster: make %s reachable for OS user %s: %w", dir, o.name, err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(p, fi.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("pgcluster: make %s reachable for OS user %s: %w", dir, o.name, err)
			}
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// chown makes o the owner of path (nil o: nothing to do).
func (o *owner) chown(path string) error {
	if o == nil {
		return nil
	}
	if err := os.Chown(path, int(o.uid), int(o.gid)); err != nil {
		return fmt.Errorf("pgcluster: give %s to OS user %s: %w", path, o.name, err)
	}
	return nil
}

// childEnv is the environment of PostgreSQL programs: this process's without
// PG* variables (PGDATA, PGPORT, PGOPTIONS… would change what the programs
// do) and with the C locale, so that messages are English and parseable.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

// run runs the PostgreSQL program name from c's bin directory as c's owner.
// The error says what ran, wraps ctx's error when ctx ended it, and carries
// the program's output.
func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.Dir = c.base // the owner may not be allowed into this process's working directory
	cmd.Env = childEnv()
	cmd.SysProcAttr = c.owner.sysProcAttr()
	// On cancellation kill the program's whole process group: initdb's
	// bootstrap backend too. A server started by pg_ctl has its own session.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second // a child that keeps the output pipe open cannot hang us
	err := cmd.Run()
	if err == nil {
		return nil
	}
	msg := strings.TrimSpace(out.String())
	if ctx.Err() != nil {
		return fmt.Errorf("%s %s: %w (%w): %s", name, strings.Join(args, " "), ctx.Err(), err, msg)
	}
	return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
}

// exitCode returns the exit status carried by err, or -1.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// watchdogScript waits until its stdin reaches end of file, which happens
// when the process holding the pipe's write end (this one) exits, however it
// exits; then it stops the server and removes the cluster's files.
const watchdogScript = `trap '' HUP INT
read -r _
"$1" stop -D "$2" -m immediate -s >/dev/null 2>&1
rm -rf "$2" "$3"`

// watchdog is the safety net that keeps a cluster from outliving the Go
// process when Stop is never called (a crash, a test timeout, os.Exit).
type watchdog struct {
	cmd  *exec.Cmd
	pipe *os.File // write end; the watchdog fires when it closes
}

// startWatchdog starts a watchdog running the shell script with name ($0)
// and args as o in dir. It must run before the server it guards first
// starts, so that no server exists without one. The script's stdin is the
// read end of the watchdog's pipe.
func startWatchdog(o *owner, dir, script, name string, args ...string) (*watchdog, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pgcluster: start watchdog: %w", err)
	}
	defer r.Close() // the child has its own copy
	cmd := exec.Command("/bin/sh", append([]string{"-c", script, name}, args...)...)
	cmd.Dir = dir
	cmd.Env = childEnv()
	cmd.SysProcAttr = o.sysProcAttr()
	cmd.Stdin = r
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("pgcluster: start watchdog: %w", err)
	}
	return &watchdog{cmd: cmd, pipe: w}, nil
}

// disarm ends the watchdog without letting it act: Stop does its work.
func (w *watchdog) disarm() {
	if w == nil {
		return
	}
	_ = w.cmd.Process.Kill() // fails only if it already exited
	_ = w.cmd.Wait()         // reports the kill
	w.pipe.Close()
}
