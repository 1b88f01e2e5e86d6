package pgcluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// etcdServer is the single-member etcd that a Patroni cluster keeps its
// leader lock and configuration in.
type etcdServer struct {
	bin        string // the etcd program
	dir        string // its data directory; its log goes next to it
	clientPort int
	peerPort   int
	proc       *child
}

func (e *etcdServer) log() string { return e.dir + ".log" }

// clientURL is where etcd's clients (Patroni) reach it.
func (e *etcdServer) clientURL() string { return "http://127.0.0.1:" + strconv.Itoa(e.clientPort) }

// start starts etcd as o in dir and waits until it reports itself healthy.
func (e *etcdServer) start(ctx context.Context, o *owner, dir string, w *watchdog) error {
	peer := "http://127.0.0.1:" + strconv.Itoa(e.peerPort)
	proc, err := spawn(o, dir, e.log(), childEnvWithout("ETCD"), w, e.bin,
		"--name", "pgcluster", "--data-dir", e.dir,
		"--listen-client-urls", e.clientURL(), "--advertise-client-urls", e.clientURL(),
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "pgcluster="+peer, "--initial-cluster-state", "new",
		"--logger", "zap", "--log-level", "warn")
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	e.proc = proc
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
	var last error
	for {
		if last = etcdHealthy(ctx, client, e.clientURL()); last == nil {
			return nil
		}
		select {
		case <-proc.exited:
			return fmt.Errorf("etcd exited: %v\netcd log:\n%s", proc.err, logSince(e.log(), 0))
		case <-ctx.Done():
			return fmt.Errorf("etcd on port %d: %w; last health check: %w\netcd log:\n%s",
				e.clientPort, ctx.Err(), last, logSince(e.log(), 0))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// etcdHealthy asks etcd at url whether it is healthy.
func etcdHealthy(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"true"`) {
		return fmt.Errorf("etcd says %s: %s", resp.Status, b)
	}
	return nil
}

// kill ends etcd at once, if it was started: its data is throw-away.
func (e *etcdServer) kill() {
	if e.proc != nil {
		e.proc.kill()
	}
}
