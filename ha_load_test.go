package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/internal/pgcluster"
)

// The load of TestHAUnderLoad: eight workers move money between accounts
// in transactions with Retry and read the total through routed reads,
// while the cluster switches over and then fails over.
const (
	haWorkers  = 8
	haAccounts = 100
	haBalance  = 1000 // each account's opening balance
	// haFailoverBudget bounds each transaction, retries included: an
	// outage within it must not reach the caller.
	haFailoverBudget = 30 * time.Second
	// haAttempts is Retry's number of attempts.
	haAttempts = 5
	// haSteady is how long the load runs between the events.
	haSteady = 2 * time.Second
)

// haTxOptions are the options of every transfer: Retry, whose failover
// budget re-runs a transfer whose node failed before COMMIT was sent.
func haTxOptions() []piccolo.TxOption {
	return []piccolo.TxOption{piccolo.Retry(haAttempts), piccolo.FailoverBudget(haFailoverBudget)}
}

// haPhase is the part of the run an outcome belongs to.
type haPhase int

const (
	phaseSteady haPhase = iota
	phaseSwitchover
	phaseFailover
	haPhases
)

func (p haPhase) String() string { return [...]string{"steady", "switchover", "failover"}[p] }

// haLoad runs the workers and records what reached them.
type haLoad struct {
	e        *piccolo.PostgresEngine
	accounts string // table (id, balance)
	log      string // table (id, src, dst, amount): one row per committed transfer
	phase    atomic.Int32
	stop     atomic.Bool

	mu        sync.Mutex
	acks      []haAck // the acknowledged commits
	acked     []int64 // their transfer IDs
	ambiguous []int64 // transfers whose commit outcome is unknown
	errs      [haPhases]map[string]int
	commits   [haPhases]int
	reads     int
	readErrs  map[string]int
	badTotals int         // routed reads whose total was not conserved
	readPorts map[int]int // routed reads per node port
	lastRead  map[int]time.Time
}

func newHALoad(e *piccolo.PostgresEngine, accounts, log string) *haLoad {
	l := &haLoad{e: e, accounts: accounts, log: log, readErrs: map[string]int{},
		readPorts: map[int]int{}, lastRead: map[int]time.Time{}}
	for i := range l.errs {
		l.errs[i] = map[string]int{}
	}
	return l
}

// run is worker w's loop, until stop.
func (l *haLoad) run(ctx context.Context, w int) {
	rng := rand.New(rand.NewPCG(uint64(w), 15))
	for seq := int64(1); !l.stop.Load(); seq++ {
		id := int64(w)<<32 | seq
		src, dst := rng.IntN(haAccounts)+1, rng.IntN(haAccounts-1)+1
		if dst >= src {
			dst++
		}
		port, err := l.transfer(ctx, id, src, dst, rng.Int64N(50)+1)
		l.record(id, port, err)
		if err != nil && !errors.Is(err, piccolo.ErrAmbiguousCommit) {
			pace(ctx) // a client backs off after an error too
		}
		l.read(ctx)
	}
}

// transfer moves amount from src to dst and logs it under id, in a
// transaction bounded by the failover budget, and returns the port of the
// node it ran on (last).
func (l *haLoad) transfer(ctx context.Context, id int64, src, dst int, amount int64) (port int, err error) {
	ctx, cancel := context.WithTimeout(ctx, haFailoverBudget)
	defer cancel()
	err = l.e.Transaction(ctx, func(ctx context.Context) error {
		for _, s := range []piccolo.Querystring{
			{SQL: "UPDATE " + l.accounts + " SET balance = balance - $2 WHERE id = $1", Args: []any{src, amount}},
			{SQL: "UPDATE " + l.accounts + " SET balance = balance + $2 WHERE id = $1", Args: []any{dst, amount}},
		} {
			if _, err := l.e.Exec(ctx, s); err != nil {
				return err
			}
		}
		rows, err := l.e.RunQuerystring(ctx, piccolo.Querystring{
			SQL:  "INSERT INTO " + l.log + " (id, src, dst, amount) VALUES ($1, $2, $3, $4) RETURNING current_setting('port')::int AS port",
			Args: []any{id, src, dst, amount},
		})
		if err == nil {
			port = int(rows[0]["port"].(int32))
		}
		return err
	}, haTxOptions()...)
	return port, err
}

// haAck is an acknowledged commit: when it returned, on which node.
type haAck struct {
	at   time.Time
	port int
}

func (l *haLoad) record(id int64, port int, err error) {
	phase := haPhase(l.phase.Load())
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err == nil:
		l.acks = append(l.acks, haAck{time.Now(), port})
		l.acked = append(l.acked, id)
		l.commits[phase]++
	case errors.Is(err, piccolo.ErrAmbiguousCommit):
		l.ambiguous = append(l.ambiguous, id)
	default:
		l.errs[phase][errKind(err)]++
	}
}

// read reads the total through a routed read: it must be conserved on
// whichever node it ran.
func (l *haLoad) read(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, haFailoverBudget)
	defer cancel()
	rows, err := l.e.RunQuerystring(ctx, piccolo.Querystring{
		SQL: "SELECT sum(balance)::bigint AS total, current_setting('port')::int AS port FROM " + l.accounts,
	}, piccolo.Read())
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads++
	if err != nil {
		l.readErrs[errKind(err)]++
		return
	}
	port := int(rows[0]["port"].(int32))
	l.readPorts[port]++
	l.lastRead[port] = time.Now()
	if rows[0]["total"] != int64(haAccounts*haBalance) {
		l.badTotals++
	}
}

// pace waits a little, or until ctx ends.
func pace(ctx context.Context) {
	timer := time.NewTimer(20 * time.Millisecond)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// errKind names the kind of an error that reached a caller.
func errKind(err error) string {
	var retryErr *piccolo.RetryError
	var pgErr *pgconn.PgError
	var connErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &retryErr):
		return "retries exhausted: " + errKind(retryErr.Err)
	case errors.Is(err, context.DeadlineExceeded):
		return "failover budget spent"
	case errors.As(err, &connErr):
		return "connect failed"
	case errors.As(err, &pgErr):
		return "SQLSTATE " + pgErr.Code
	case errors.As(err, &netErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed), strings.Contains(err.Error(), "conn closed"):
		return "connection lost"
	default:
		return fmt.Sprintf("other (%T): %v", err, err)
	}
}

// haWindow is what one event (a switchover, a kill -9 of the leader) did
// to the writes.
type haWindow struct {
	event    time.Time // when the test acted
	lastOld  time.Time // the workers' last acknowledged commit on the old leader
	oldAfter int       // their commits on the old leader after the event
	probe    time.Time // when a probe write first committed on another node
	// firstNew is the workers' first acknowledged commit on another node.
	firstNew time.Time
	// accepting is when another node first accepted a write: the earlier
	// of probe and firstNew.
	accepting time.Time
}

// outage is how long no node accepted writes: from the workers' last
// commit on the old leader to another node accepting one.
func (w haWindow) outage() time.Duration { return w.accepting.Sub(w.lastOld) }

// resume is how long after the probe found the new primary the workers'
// writes went there (0 when theirs came first).
func (w haWindow) resume() time.Duration { return max(0, w.firstNew.Sub(w.probe)) }

func (w haWindow) String() string {
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("write outage %v (%d commits on the old leader after the event, the last %v after it; a new primary accepting writes %v after it); "+
		"workers resumed %v after the new primary accepted a probe write (gap seen by the workers %v)",
		ms(w.outage()), w.oldAfter, ms(w.lastOld.Sub(w.event)), ms(w.accepting.Sub(w.event)), ms(w.resume()), ms(w.firstNew.Sub(w.lastOld)))
}

// probeNewPrimary commits a write through the cluster's read-write DSN every
// 20 ms until one lands on a node other than the one on oldPort, and
// returns when it did. It runs until ctx ends.
func probeNewPrimary(ctx context.Context, p *pgcluster.Patroni, oldPort int) (time.Time, error) {
	var last error
	for {
		attempt, cancel := context.WithTimeout(ctx, 2*time.Second)
		port, err := probeWrite(attempt, p.DSN("postgres"))
		cancel()
		if err == nil && port != oldPort {
			return time.Now(), nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("no new primary: %w (last probe: %v)", ctx.Err(), last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// probeWrite commits a write (it takes a transaction ID) on a new
// connection to dsn and returns the port of the node it ran on.
func probeWrite(ctx context.Context, dsn string) (int, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var port int
	err = conn.QueryRow(ctx, "SELECT current_setting('port')::int FROM pg_current_xact_id()").Scan(&port)
	return port, err
}

// window measures the writes around an event that began at event, whose
// old leader listens on oldPort and after which a probe write first
// committed elsewhere at probe. It waits (within the failover budget) for
// a worker to commit on another node.
func (l *haLoad) window(ctx context.Context, event time.Time, oldPort int, probe time.Time) (haWindow, error) {
	w := haWindow{event: event, probe: probe}
	deadline := time.Now().Add(haFailoverBudget)
	for {
		l.mu.Lock()
		for _, a := range l.acks {
			switch {
			case a.at.Before(event):
			case a.port == oldPort:
				w.lastOld = maxTime(w.lastOld, a.at)
				w.oldAfter++
			case w.firstNew.IsZero() || a.at.Before(w.firstNew):
				w.firstNew = a.at
			}
		}
		l.mu.Unlock()
		if !w.firstNew.IsZero() {
			break
		}
		w.lastOld, w.oldAfter, w.firstNew = time.Time{}, 0, time.Time{}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return w, fmt.Errorf("no worker committed on a new primary within %v", haFailoverBudget)
		}
		pace(ctx)
	}
	if w.lastOld.IsZero() {
		w.lastOld = event // none committed on the old leader after the event
	}
	w.accepting = w.probe
	if w.firstNew.Before(w.accepting) {
		w.accepting = w.firstNew
	}
	return w, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// summary is the load's figures, for the log.
func (l *haLoad) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var sb strings.Builder
	fmt.Fprintf(&sb, "acknowledged commits %d, ambiguous %d; routed reads %d (per port %v), failed %d %v, with a wrong total %d",
		len(l.acked), len(l.ambiguous), l.reads, l.readPorts, sumCounts(l.readErrs), l.readErrs, l.badTotals)
	for ph := range haPhases {
		fmt.Fprintf(&sb, "\n  %s: %d commits, %d errors reached callers %v", ph, l.commits[ph], sumCounts(l.errs[ph]), l.errs[ph])
	}
	return sb.String()
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}
