package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPatroniBootstrapSwitchoverFailover starts a three-node Patroni
// cluster and takes it through what the high-availability tests of the
// engine need: a switchover through the REST API, a kill -9 of the leader
// and a new leader after the ttl, and the old leader rejoining as a
// replica. Each step has a deadline; the times are logged.
func TestPatroniBootstrapSwitchoverFailover(t *testing.T) {
	t.Parallel()
	began := time.Now()
	p, err := StartPatroni(withTimeout(t, 2*time.Minute), PatroniOptions{})
	if err != nil {
		t.Fatalf("StartPatroni: %v", err)
	}
	stopAtEnd(t, "patroni", p)
	t.Logf("bootstrap: leader and synchronous standby after %v", since(began))
	leader, err := p.Leader(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	checkWrite(t, p, "bootstrap", leader.Name)
	if got := mustQuery(t, p.ReadDSN(""), "SELECT pg_is_in_recovery()::text"); got != "true" {
		t.Fatal("the read DSN (target_session_attrs=prefer-standby) reached the primary")
	}

	t.Run("switchover", func(t *testing.T) {
		began := time.Now()
		next, err := p.Switchover(withTimeout(t, time.Minute), "")
		if err != nil {
			t.Fatal(err)
		}
		if next.Name == leader.Name {
			t.Fatalf("leader after switchover is still %s", next.Name)
		}
		if err := p.WaitWritable(withTimeout(t, 30*time.Second)); err != nil {
			t.Fatal(err)
		}
		t.Logf("switchover %s -> %s: writable after %v", leader.Name, next.Name, since(began))
		checkWrite(t, p, "after switchover", next.Name)
		leader = next
		// In synchronous mode only a synchronous standby may take over:
		// until the new leader has one, a kill -9 of it leaves no leader.
		if _, err := p.WaitHealthy(withTimeout(t, time.Minute)); err != nil {
			t.Fatal(err)
		}
		t.Logf("switchover: synchronous standby again after %v", since(began))
	})

	t.Run("kill leader", func(t *testing.T) {
		began := time.Now()
		killed, err := p.KillLeader(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		next, err := p.WaitLeader(withTimeout(t, time.Minute), killed.Name)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.WaitWritable(withTimeout(t, 30*time.Second)); err != nil {
			t.Fatal(err)
		}
		t.Logf("kill -9 of %s: %s writable after %v", killed.Name, next.Name, since(began))
		checkWrite(t, p, "after failover", next.Name)

		began = time.Now()
		if err := p.StartNode(withTimeout(t, time.Minute), killed.Name); err != nil {
			t.Fatal(err)
		}
		ms, err := p.WaitHealthy(withTimeout(t, time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s rejoined as a replica after %v: %+v", killed.Name, since(began), ms)
		got := mustQuery(t, p.NodeDSN(killed.Name, ""), "SELECT pg_is_in_recovery()::text")
		if got != "true" {
			t.Fatalf("old leader %s: pg_is_in_recovery() = %s", killed.Name, got)
		}
	})

	t.Run("stop", func(t *testing.T) { checkStopRemovesEverything(t, p) })
}

// checkWrite writes through the cluster's read-write DSN and checks that
// the write reached the node named want.
func checkWrite(t *testing.T, p *Patroni, when, want string) {
	t.Helper()
	port := mustQuery(t, p.DSN(""), "SELECT current_setting('port')")
	if p.NodeDSN(want, "") != dsn(atoi(t, port), "") {
		t.Fatalf("%s: the read-write DSN reached port %s, not the leader %s", when, port, want)
	}
	if got := mustQuery(t, p.DSN(""), "SELECT pg_is_in_recovery()::text"); got != "false" {
		t.Fatalf("%s: the read-write DSN reached a standby", when)
	}
}

// checkStopRemovesEverything checks that Stop leaves no process and no
// file of p behind, and that a second Stop does nothing.
func checkStopRemovesEverything(t *testing.T, p *Patroni) {
	pids := []int{p.etcd.proc.cmd.Process.Pid}
	for _, n := range p.nodes {
		pid, err := postmasterPID(n.data)
		if err != nil || pid == 0 {
			t.Fatalf("%s: postmaster.pid: %d, %v", n.name, pid, err)
		}
		pids = append(pids, n.proc.cmd.Process.Pid, pid)
	}
	if err := p.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := os.Stat(p.base); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Stop, %s: %v", p.base, err)
	}
	// A killed postmaster was Patroni's child: init reaps it, a moment later.
	waitFor(t, "every process to be gone after Stop", func() bool {
		return !slices.ContainsFunc(pids, processAlive)
	})
	if err := p.Stop(t.Context()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func since(t time.Time) time.Duration { return time.Since(t).Round(100 * time.Millisecond) }

// withTimeout returns the test's context with a deadline d from now.
func withTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestWatchdogStopsOrphanedPatroni checks that the watchdog ends etcd, every
// Patroni and every PostgreSQL server, and removes the files, when the
// process that started them exits without Stop.
func TestWatchdogStopsOrphanedPatroni(t *testing.T) {
	t.Parallel()
	orphans := inChild(t, nil, func() ([]started, error) {
		p, err := StartPatroni(context.Background(), PatroniOptions{Nodes: 2})
		if err != nil {
			return nil, err
		}
		s := []started{{p.etcd.clientPort, p.base}}
		for _, n := range p.nodes {
			s = append(s, started{n.pgPort, p.base}, started{n.apiPort, p.base})
		}
		return s, nil
	})
	waitGone(t, "the watchdog to stop the orphaned Patroni cluster", orphans)
}

// processAlive reports whether process pid exists and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return syscall.Kill(pid, 0) == nil // no /proc: a zombie counts as alive
	}
	// pid (comm) state …: comm may hold spaces and parentheses.
	_, rest, _ := strings.Cut(string(b[bytes.LastIndexByte(b, ')')+1:]), " ")
	return !strings.HasPrefix(rest, "Z")
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
