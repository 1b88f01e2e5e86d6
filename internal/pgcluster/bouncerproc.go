package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

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
func (b *Bouncer) spawn() (*child, error) {
	// -q: log to the log file only; what comes before it is open goes to stderr.
	return spawn(b.owner, b.base, b.errFile, bouncerEnv(), b.watchdog, b.bin, "-q", b.ini)
}

// bouncerEnv is childEnv without systemd's socket activation and readiness
// variables, which a pgbouncer built with systemd support would act on.
func bouncerEnv() []string {
	return childEnvWithout("NOTIFY_SOCKET=", "LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES=")
}

// waitReady waits until p logs that it listens on b.port, then until a
// query through it succeeds. When it cannot listen there, PgBouncer says
// so in its log and exits (having no Unix socket to go on with).
func (b *Bouncer) waitReady(ctx context.Context, p *child, offset int64) error {
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
