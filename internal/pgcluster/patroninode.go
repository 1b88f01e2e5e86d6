package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Kill ends the node named name at once, as a crash would: kill -9 of its
// Patroni and of its PostgreSQL postmaster, one right after the other. Its
// data stays; StartNode brings it back.
func (p *Patroni) Kill(name string) error {
	n, err := p.node(name)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	postmaster, err := postmasterPID(n.data)
	if err != nil {
		return fmt.Errorf("pgcluster: kill %s: %w", name, err)
	}
	if n.proc != nil {
		// Patroni first, so that it cannot start PostgreSQL again.
		_ = n.proc.cmd.Process.Kill() // fails only if it already exited
	}
	if postmaster != 0 {
		if err := syscall.Kill(postmaster, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("pgcluster: kill %s: postmaster %d: %w", name, postmaster, err)
		}
	}
	if n.proc != nil {
		n.proc.kill() // waits for it
		fmt.Fprintf(p.watchdog.pipe, "-%d\n", n.proc.cmd.Process.Pid)
		n.proc = nil
	}
	return nil
}

// postmasterPID returns the process ID in data's postmaster.pid, or 0 when
// there is none (PostgreSQL is not running).
func postmasterPID(data string) (int, error) {
	b, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		return 0, fmt.Errorf("postmaster.pid: %w", err)
	}
	return pid, nil
}

// StartNode starts the Patroni of a node that Kill ended, and waits until
// the node runs again (as a replica, when another node has taken over).
func (p *Patroni) StartNode(ctx context.Context, name string) error {
	n, err := p.node(name)
	if err != nil {
		return err
	}
	p.mu.Lock()
	running := n.proc != nil
	p.mu.Unlock()
	if running {
		return fmt.Errorf("pgcluster: node %s is running", name)
	}
	if err := p.spawnNode(n); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	_, err = p.waitMembers(ctx, name+" running", func(ms []Member) bool {
		m, ok := memberNamed(ms, name)
		return ok && m.running()
	})
	return err
}
