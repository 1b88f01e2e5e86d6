package pgcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// childEnv names, in the environment of a child run of the test binary,
// the test whose child part it is to run.
const childTestEnv = "PGCLUSTER_TEST_CHILD"

// started is what a child process started: a server listening on port, its
// files in dir.
type started struct {
	port int
	dir  string
}

// inChild runs start in a child process: the test binary again, running
// only t's test, with the environment and working directory ("": this one)
// that setup returns (nil setup: this process's). The child prints what
// start started and exits without stopping it, as a crashing test would;
// inChild returns that list to the parent and does not return in the child.
// setup runs in the parent only, so that the child makes no directories it
// would leave behind.
func inChild(t *testing.T, setup func() (env []string, dir string), start func() ([]started, error)) []started {
	t.Helper()
	if os.Getenv(childTestEnv) == t.Name() {
		servers, err := start()
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		for _, s := range servers {
			fmt.Printf("started %d %s\n", s.port, s.dir)
		}
		os.Exit(0) // no Stop: the watchdogs must clean up
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var run []string // -test.run matches each level of a subtest's name
	for _, part := range strings.Split(t.Name(), "/") {
		run = append(run, "^"+regexp.QuoteMeta(part)+"$")
	}
	env, dir := os.Environ(), ""
	if setup != nil {
		env, dir = setup()
	}
	cmd := exec.CommandContext(t.Context(), exe, "-test.run="+strings.Join(run, "/"))
	cmd.Env = append(slices.Clone(env), childTestEnv+"="+t.Name())
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var servers []started
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "started ")
		if !ok {
			continue
		}
		port, dir, _ := strings.Cut(line, " ")
		n, err := strconv.Atoi(port)
		if err != nil || dir == "" {
			t.Fatalf("child reported %q", sc.Text())
		}
		servers = append(servers, started{n, dir})
	}
	if len(servers) == 0 {
		t.Fatalf("child did not report what it started:\n%s", out)
	}
	return servers
}

// waitGone polls, for up to 30 seconds, until no server of servers
// answers on its port and none of their directories exists.
func waitGone(t *testing.T, what string, servers []started) {
	t.Helper()
	waitFor(t, what, func() bool {
		for _, s := range servers {
			if _, err := os.Stat(s.dir); !errors.Is(err, os.ErrNotExist) {
				return false
			}
			conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), time.Second)
			if err == nil {
				conn.Close() // an open connection would keep a backend waiting for its startup packet
				return false
			}
		}
		return true
	})
}

// startClusterAndBouncer starts a cluster and a PgBouncer in front of it.
func startClusterAndBouncer() (*Cluster, *Bouncer, error) {
	c, err := Start(context.Background(), Options{})
	if err != nil {
		return nil, nil, err
	}
	b, err := StartBouncer(context.Background(), c, BouncerOptions{})
	if err != nil {
		return nil, nil, errors.Join(err, c.Stop(context.Background()))
	}
	return c, b, nil
}

// orphanClusterAndBouncer starts a cluster and a PgBouncer in front of it,
// and leaves them running.
func orphanClusterAndBouncer() ([]started, error) {
	c, b, err := startClusterAndBouncer()
	if err != nil {
		return nil, err
	}
	return []started{{c.Port(), c.base}, {b.Port(), b.base}}, nil
}

func TestWatchdogStopsOrphanedCluster(t *testing.T) {
	t.Parallel()
	orphans := inChild(t, nil, func() ([]started, error) {
		c, err := Start(context.Background(), Options{})
		if err != nil {
			return nil, err
		}
		return []started{{c.Port(), c.base}}, nil
	})
	waitGone(t, "the watchdog to stop the orphaned cluster", orphans)
}

func TestWatchdogStopsOrphanedBouncer(t *testing.T) {
	t.Parallel()
	orphans := inChild(t, nil, orphanClusterAndBouncer)
	waitGone(t, "the watchdogs to stop the orphaned cluster and bouncer", orphans)
}

// TestAnyTMPDIRIsLeftAsItWas pins the rule that clusters, bouncers and their
// watchdogs work with any TMPDIR (a directory only this process's user may
// write to, such as root's 0755 one when the servers run as postgres; a
// relative path; none) and leave nothing in it, whether Stop ends them or
// the watchdogs do.
func TestAnyTMPDIRIsLeftAsItWas(t *testing.T) {
	t.Parallel()
	tmpdirs := []struct {
		name string
		// tmpdir returns TMPDIR ("": unset), the child's working directory
		// and the directory that must be empty at the end ("": /tmp, not
		// checked as other processes use it).
		tmpdir func(t *testing.T) (tmpdir, workDir, check string)
	}{
		{"writable only by this user", func(t *testing.T) (string, string, string) {
			dir := filepath.Join(t.TempDir(), "tmp")
			mustMkdir(t, dir)
			return dir, "", dir
		}},
		{"relative", func(t *testing.T) (string, string, string) {
			work := t.TempDir()
			mustMkdir(t, filepath.Join(work, "tmp"))
			return "tmp", work, filepath.Join(work, "tmp")
		}},
		{"unset", func(*testing.T) (string, string, string) { return "", "", "" }},
	}
	ends := []struct {
		name string
		end  func() ([]started, error)
	}{
		{"Stop", func() ([]started, error) {
			c, b, err := startClusterAndBouncer()
			if err != nil {
				return nil, err
			}
			return []started{{c.Port(), c.base}, {b.Port(), b.base}},
				errors.Join(b.Stop(context.Background()), c.Stop(context.Background()))
		}},
		{"watchdog", orphanClusterAndBouncer},
	}
	for _, td := range tmpdirs {
		for _, e := range ends {
			t.Run(td.name+" ended by "+e.name, func(t *testing.T) {
				t.Parallel()
				var check string // the directory that must be empty at the end
				servers := inChild(t, func() ([]string, string) {
					tmpdir, workDir, c := td.tmpdir(t)
					check = c
					env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "TMPDIR=") })
					if tmpdir != "" {
						env = append(env, "TMPDIR="+tmpdir)
					}
					return env, workDir
				}, e.end)
				waitGone(t, "the cluster and bouncer to be gone", servers)
				if check == "" {
					check = "/tmp"
				} else if entries, err := os.ReadDir(check); err != nil || len(entries) != 0 {
					t.Errorf("TMPDIR %s holds %v afterwards (read: %v), want nothing", check, entries, err)
				}
				for _, s := range servers {
					if filepath.Dir(s.dir) != check {
						t.Errorf("temporary directory %s is not in TMPDIR %s", s.dir, check)
					}
				}
			})
		}
	}
}

// mustMkdir creates dir with mode 0755 (0700 would keep the servers' OS
// user out).
func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}
