package pgcluster

import (
	"fmt"
	"os"
	"os/exec"
)

// A watchdog is the safety net that keeps a cluster or a bouncer from
// outliving the Go process when Stop is never called (a crash, a test
// timeout, os.Exit). It is two shell processes, chained by pipes:
//
//   - the guard runs as the server's owner, so that it may stop the server.
//     Its standard input is a pipe whose only writer is this process, so it
//     reads end of file when this process exits, however it exits; then it
//     stops the server and exits.
//   - the sweeper runs as this process's user and removes the files. Its
//     standard input is a pipe whose only writer is the guard (its file
//     descriptor 3), so it reads end of file once the guard has exited.
//
// The files are the sweeper's because the owner may be unable to unlink
// the temporary directory it owns: its parent, TMPDIR, may be writable by
// this process's user only (a root-owned 0755 directory, say).
type watchdog struct {
	guard, sweeper *exec.Cmd
	pipe           *os.File // write end of the guard's standard input
}

// clusterGuardScript stops the server of data directory $2 with pg_ctl $1.
const clusterGuardScript = `trap '' HUP INT
read -r _
"$1" stop -D "$2" -m immediate -s >/dev/null 2>&1 3>&-`

// bouncerGuardScript reads the PIDs of the pgbouncer processes started (one
// a line; only the last can still run), then ends that pgbouncer like Stop
// does.
const bouncerGuardScript = `trap '' HUP INT
pid=
while read -r line; do pid=$line; done
for sig in TERM TERM KILL; do
	[ -n "$pid" ] && kill -s "$sig" "$pid" 2>/dev/null || break
	i=0
	while [ $i -lt 20 ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1 3>&-; i=$((i+1)); done
done`

// sweeperScript removes its arguments once its standard input ends.
const sweeperScript = `trap '' HUP INT
while read -r _; do :; done
rm -rf -- "$@"`

// startWatchdog starts a watchdog whose guard runs guardScript as o in dir,
// with name as $0 and guardArgs as "$@", and whose sweeper then removes the
// paths in remove. It must run before the server it guards first starts, so
// that no server exists without one.
func startWatchdog(o *owner, dir, name, guardScript string, guardArgs, remove []string) (w *watchdog, err error) {
	guardIn, guardInW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start watchdog: %w", err)
	}
	defer guardIn.Close() // from here on, the guard's copy is the only one
	sweeperIn, guardOut, err := os.Pipe()
	if err != nil {
		guardInW.Close()
		return nil, fmt.Errorf("start watchdog: %w", err)
	}
	// The guard's copy of guardOut, and the sweeper's of sweeperIn, are the
	// only ones left once the children run.
	defer sweeperIn.Close()
	defer guardOut.Close()
	w = &watchdog{pipe: guardInW}
	defer func() {
		if err != nil {
			w.disarm()
		}
	}()
	w.guard = shell(o, dir, guardScript, name, guardArgs)
	w.guard.Stdin = guardIn
	w.guard.ExtraFiles = []*os.File{guardOut} // descriptor 3
	if err := w.guard.Start(); err != nil {
		w.guard = nil
		return nil, fmt.Errorf("start watchdog: %w", err)
	}
	w.sweeper = shell(nil, "/", sweeperScript, name+"-sweeper", remove)
	w.sweeper.Stdin = sweeperIn
	if err := w.sweeper.Start(); err != nil {
		w.sweeper = nil
		return nil, fmt.Errorf("start watchdog's sweeper: %w", err)
	}
	return w, nil
}

// shell returns a command running script with /bin/sh as o in dir, with
// name as $0 and args as "$@".
func shell(o *owner, dir, script, name string, args []string) *exec.Cmd {
	cmd := exec.Command("/bin/sh", append([]string{"-c", script, name}, args...)...)
	cmd.Dir = dir
	cmd.Env = childEnv()
	cmd.SysProcAttr = o.sysProcAttr()
	return cmd
}

// disarm ends the watchdog without letting it act: Stop does its work. The
// sweeper goes first, so that the guard's end cannot set it off.
func (w *watchdog) disarm() {
	if w == nil {
		return
	}
	for _, cmd := range []*exec.Cmd{w.sweeper, w.guard} {
		if cmd != nil {
			_ = cmd.Process.Kill() // fails only if it already exited
			_ = cmd.Wait()         // reports the kill
		}
	}
	w.pipe.Close()
}
