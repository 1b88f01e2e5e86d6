package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// bouncerProc is one running pgbouncer process.
type bouncerProc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd.Wait has returned; then err is set
	err    error
}

// bouncerStartTimeout bounds how long one start attempt waits for PgBouncer
// to answer.
const bouncerStartTimeout = 30 * time.Second

// startProcess starts pgbouncer and waits until it listens on b.port and
// a query through it reaches the server. On failure the process is gone and
// the error carries what PgBouncer logged during this attempt.
func (b *Bouncer) startProcess(ctx context.Context) error {
	var offset int64
	if fi, err := os.Stat(b.logFile); err == nil {
		offset = fi.Size()
	}
	p, err := b.spawn()
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.proc = p
	b.mu.Unlock()
	err = b.waitReady(ctx, p, offset)
	if err == nil {
		return nil
	}
	p.kill()
	log := logSince(b.logFile, offset)
	if stderr := strings.TrimSpace(readFrom(b.errFile, 0)); stderr != "" {
		log += "\nstandard error:\n" + stderr
	}
	return fmt.Errorf("pgbouncer on port %d: %w\npgbouncer log:\n%s", b.port, err, log)
}

// spawn starts a pgbouncer process as b's owner and tells the watchdog its
// process ID.
func (b *Bouncer) spawn() (*bouncerProc, error) {
	stderr, err := os.OpenFile(b.errFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open pgbouncer's standard error file: %w", err)
	}
	defer stderr.Close() // the child has its own copy
	// -q: log to the log file only; what comes before it is open goes to stderr.
	cmd := exec.Command(b.bin, "-q", b.ini)
	cmd.Dir = b.base
	cmd.Env = bouncerEnv()
	cmd.SysProcAttr = b.owner.sysProcAttr()
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", b.bin, err)
	}
	// The watchdog keeps the last PID it reads; it cannot block on a pipe
	// buffer holding a few lines.
	fmt.Fprintf(b.watchdog.pipe, "%d\n", cmd.Process.Pid)
	p := &bouncerProc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// bouncerEnv is childEnv without systemd's socket activation and readiness
// variables, which a pgbouncer built with systemd support would act on.
func bouncerEnv() []string {
	return slices.DeleteFunc(childEnv(), func(kv string) bool {
		for _, v := range []string{"NOTIFY_SOCKET=", "LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES="} {
			if strings.HasPrefix(kv, v) {
				return true
			}
		}
		return false
	})
}

// waitReady waits until p logs that it listens on b.port, then until a
// query through it succeeds. When it cannot listen there, PgBouncer says
// so in its log and exits (having no Unix socket to go on with).
func (b *Bouncer) waitReady(ctx context.Context, p *bouncerProc, offset int64) error {
	ctx, cancel := context.WithTimeout(ctx, bouncerStartTimeout)
	defer cancel()
	listening := fmt.Sprintf("listening on 127.0.0.1:%d", b.port)
	cannot := fmt.Sprintf("cannot listen on 127.0.0.1:%d", b.port)
	listens := false
	var pingErr error
	for {
		exited := false
		select {
		case <-p.exited: // then its log is complete
			exited = true
		default:
		}
		if !listens {
			log := readFrom(b.logFile, offset)
			if strings.Contains(log, cannot) {
				if strings.Contains(log, "Address already in use") {
					return errPortInUse
				}
				return errors.New("pgbouncer cannot listen on its port")
			}
			listens = strings.Contains(log, listening)
		}
		if exited {
			return fmt.Errorf("pgbouncer exited: %v", p.err) // p.err is nil after exit status 0
		}
		if listens {
			if pingErr = b.ping(ctx); pingErr == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if listens {
				return fmt.Errorf("%w; last query through pgbouncer: %w", ctx.Err(), pingErr)
			}
			return fmt.Errorf("%w before pgbouncer listened", ctx.Err())
		case <-p.exited:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ping connects through b and runs SELECT 1, which also needs a server
// connection.
func (b *Bouncer) ping(ctx context.Context) error {
	cfg, err := pgx.ParseConfig(b.DSN("postgres"))
	if err != nil {
		return err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// readFrom returns the contents of path after offset, or "".
func readFrom(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < offset {
		return ""
	}
	return string(b[offset:])
}

// kill ends p at once and waits for it.
func (p *bouncerProc) kill() {
	_ = p.cmd.Process.Kill() // fails only if it already exited
	<-p.exited
}

// stop asks p to shut down and waits: SIGTERM, a second SIGTERM (PgBouncer
// 1.23 made the first one wait for clients to disconnect; the second exits
// at once), then SIGKILL. When ctx ends it kills p at once.
func (p *bouncerProc) stop(ctx context.Context) {
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
