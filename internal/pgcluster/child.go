package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// child is one running long-lived program started by this package
// (pgbouncer, etcd, patroni), as opposed to the short-lived ones run runs.
type child struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd.Wait has returned; then err is set
	err    error
}

// spawn starts program bin with args as o in dir, its standard output and
// error appended to outFile, and writes its process ID to w's guard, one a
// line (the guard cannot block on a pipe buffer holding a few lines).
func spawn(o *owner, dir, outFile string, env []string, w *watchdog, bin string, args ...string) (*child, error) {
	out, err := os.OpenFile(outFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the output file of %s: %w", bin, err)
	}
	defer out.Close() // the child has its own copy
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = o.sysProcAttr()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	fmt.Fprintf(w.pipe, "%d\n", cmd.Process.Pid)
	p := &child{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// kill ends p at once and waits for it.
func (p *child) kill() {
	_ = p.cmd.Process.Kill() // fails only if it already exited
	<-p.exited
}

// stop asks p to shut down and waits: SIGTERM, a second SIGTERM (PgBouncer
// 1.23 made the first one wait for clients to disconnect; the second exits
// at once), then SIGKILL. When ctx ends it kills p at once.
func (p *child) stop(ctx context.Context) {
	for _, step := range []struct {
		sig  syscall.Signal
		wait time.Duration
	}{{syscall.SIGTERM, 2 * time.Second}, {syscall.SIGTERM, 3 * time.Second}} {
		if p.cmd.Process.Signal(step.sig) != nil {
			break // it has exited
		}
		select {
		case <-p.exited:
			return
		case <-ctx.Done():
			p.kill()
			return
		case <-time.After(step.wait):
		}
	}
	p.kill()
}

// undoStart stops what failed to start with err, and returns err with what
// stop reported. ctx may be done; cleaning up must not be: stop gets a
// context of its own, bounded by a minute.
func undoStart(ctx context.Context, err error, stop func(context.Context) error) error {
	cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	return errors.Join(err, stop(cleanup))
}
