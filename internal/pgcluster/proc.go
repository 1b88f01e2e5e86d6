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
	"slices"
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

// tempDir creates a new directory for o's programs in parent ("":
// os.TempDir(), which is $TMPDIR or /tmp), named pattern with a random
// part in place of its last "*" or at its end. The path is absolute, since
// the programs run in other working directories and $TMPDIR may be
// relative.
func tempDir(parent, pattern string, o *owner) (string, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	parent, err := filepath.Abs(parent)
	if err != nil {
		return "", fmt.Errorf("pgcluster: create temporary directory: %w", err)
	}
	dir, err := os.MkdirTemp(parent, pattern)
	if err != nil {
		return "", fmt.Errorf("pgcluster: create temporary directory: %w", err)
	}
	if err := o.give(dir); err != nil {
		return "", errors.Join(fmt.Errorf("pgcluster: %w", err), os.RemoveAll(dir))
	}
	return dir, nil
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
			return fmt.Errorf("make %s reachable for OS user %s: %w", dir, o.name, err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(p, fi.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("make %s reachable for OS user %s: %w", dir, o.name, err)
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
		return fmt.Errorf("give %s to OS user %s: %w", path, o.name, err)
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

// childEnvWithout is childEnv without the variables whose "NAME=" (or
// name prefix) is among prefixes.
func childEnvWithout(prefixes ...string) []string {
	return slices.DeleteFunc(childEnv(), func(kv string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(kv, p) {
				return true
			}
		}
		return false
	})
}

// run runs the PostgreSQL program name from c's bin directory as c's owner.
func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	return runAs(ctx, c.owner, c.base, filepath.Join(c.bin, name), args...)
}

// runAs runs program path as o (nil: this process's user) in dir, which o
// must be allowed into. The error says what ran, wraps ctx's error when ctx
// ended it, and carries the program's output.
func runAs(ctx context.Context, o *owner, dir, path string, args ...string) error {
	name := filepath.Base(path)
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	cmd.Env = childEnv()
	cmd.SysProcAttr = o.sysProcAttr()
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
