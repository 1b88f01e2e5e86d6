package piccolo_test

// The chaos soak: a bank-transfer workload (accounts whose total is
// conserved, Retry, a fee in a NestSavepoint block that sometimes fails and
// rolls back alone) beside an append-only log of uniquely numbered rows,
// while a fault injector breaks things from RELIABILITY.md at random
// moments. Afterwards a checker compares what every caller was told with
// what the server has (soak_check_test.go). The workload is in
// soak_work_test.go.
//
//	go test -race -run Soak .                 # brief, bounded: CI
//	go test -race -run Soak -soak=5m .        # longer
//	go test -race -run Soak -soak.seed=N .    # replay a fault schedule

import (
	"context"
	"flag"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/internal/pgcluster"
	"go.uber.org/goleak"
)

var (
	soakDuration = flag.Duration("soak", 0, "run TestSoak's workload this long (0: a brief run bounded in time and count, for CI)")
	soakSeed     = flag.Uint64("soak.seed", 0, "seed of TestSoak's workload and fault schedule (0: a new one)")
)

const (
	soakAccounts  = 12   // account 0 is the bank, which collects the fees
	soakInitial   = 1000 // each account's opening balance
	soakWorkers   = 5
	soakMaxConns  = 4 // fewer than the workers: they also wait for the pool
	soakAttempts  = 5 // Retry's attempts per transfer
	soakOpTimeout = 30 * time.Second
	soakApp       = "soak" // the engine's application_name, whose backends the injector kills

	soakCIWorkload = 15 * time.Second // the default run's bounds
	soakCIOps      = 4000
	soakRestartGap = 10 * time.Second // at least this long between two server restarts
)

// faultKind is a fault the injector picks. Worker-side kinds are handed to
// the next transaction a worker starts, which applies them.
type faultKind int

const (
	faultNone               faultKind = iota
	faultTerminate                    // pg_terminate_backend of every backend of the engine
	faultKillIdle                     // pg_terminate_backend of the engine's idle backends
	faultCutAfterCommit               // the dial hook drops a connection right after COMMIT was sent
	faultCutAfterStatement            // the dial hook drops a connection right after a workload statement was sent
	faultRestart                      // the server restarts (fast shutdown)
	faultStatementTimeout             // worker: SET LOCAL statement_timeout, then a statement that may outlast it
	faultIdleTimeout                  // worker: SET LOCAL idle_in_transaction_session_timeout, then a pause that may outlast it
	faultDeadline                     // worker: a short deadline on the whole transaction
	faultBlockDeadline                // worker: a short deadline on the fee's savepoint block, which may end after it
	faultCancelBeforeCommit           // worker: the transaction's context cancelled as its closure returns
	numFaults
)

var faultNames = [numFaults]string{"none", "backends terminated", "idle connections killed", "dropped after COMMIT sent",
	"dropped after a statement sent", "server restart", "statement_timeout", "idle_in_transaction_session_timeout",
	"short deadline", "savepoint block deadline", "cancelled before COMMIT"}

func (k faultKind) String() string { return faultNames[k] }

// faultWeights are how often the injector picks each kind once every kind
// has had its turn.
var faultWeights = [numFaults]int{0, 3, 3, 3, 3, 1, 3, 3, 3, 3, 2}

// cutPatterns are what faultCutAfterStatement drops a connection after.
var cutPatterns = [][]byte{[]byte("INSERT INTO soak_log"), []byte("UPDATE soak_accounts"), []byte("SAVEPOINT"), []byte("RELEASE SAVEPOINT")}

// soak is one run: the engine under test, its cluster, the workers'
// records and the injector's counters.
type soak struct {
	seed    uint64
	cluster *pgcluster.Cluster
	e       *piccolo.PostgresEngine // under test: its connections get the faults
	watcher *piccolo.PostgresEngine // one-shot connections, for the injector and the checker
	maxOps  int64

	tokens    chan faultKind         // worker-side faults waiting for a transaction
	armed     atomic.Pointer[[]byte] // cutConn's pattern
	armedKind atomic.Int64           // the faultKind armed; faultNone once its cut was counted
	cut       chan struct{}
	injected  [numFaults]atomic.Int64
	killed    atomic.Int64 // backends terminated

	stop     chan struct{} // closed to stop the workers early
	stopOnce sync.Once
	opSeq    atomic.Int64 // numbers operations
	ids      atomic.Int64 // numbers log rows
	mu       sync.Mutex
	ops      []*soakOp
	audits   soakAudits
}

// TestSoak runs the soak on a throw-away cluster of its own, so that
// restarting the server disturbs no other test, and whatever DATABASE_URL
// says. Not parallel: it checks goroutines itself.
func TestSoak(t *testing.T) {
	leakFree := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		if err := goleak.Find(leakFree); err != nil {
			t.Errorf("goroutines left behind by the soak: %v", err)
		}
	})
	seed := *soakSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	workload, maxOps := soakCIWorkload, int64(soakCIOps)
	if *soakDuration > 0 {
		workload, maxOps = *soakDuration, math.MaxInt64
	}
	t.Logf("seed %d (replay with -soak.seed=%d); workload %v, at most %d operations", seed, seed, workload, maxOps)

	bg := context.Background()
	start := time.Now()
	c, err := pgcluster.Start(bg, pgcluster.Options{Settings: map[string]string{
		"synchronous_commit": "on",   // commits survive the restart whatever happens
		"deadlock_timeout":   "50ms", // deadlocks among transfers resolve quickly
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	t.Logf("cluster started in %v", time.Since(start))

	s := &soak{seed: seed, cluster: c, maxOps: maxOps, tokens: make(chan faultKind, 4),
		cut: make(chan struct{}, 1), stop: make(chan struct{})}
	var drained sync.WaitGroup
	drained.Go(s.countCuts)
	t.Cleanup(func() { close(s.cut); drained.Wait() }) // after the engine closed: no more writes
	// Session limits through the DSN: nothing the soak does may hang on the server.
	s.e = newEngine(t, true, piccolo.PostgresConfig{
		DSN:      c.DSN("") + "&application_name=" + soakApp + "&statement_timeout=5000&idle_in_transaction_session_timeout=10000&connect_timeout=5",
		MaxConns: soakMaxConns, Configure: cutConns(&s.armed, s.cut),
	})
	s.watcher = newEngine(t, false, piccolo.PostgresConfig{DSN: c.DSN("") + "&application_name=soak_watcher"})
	s.createTables(t)

	var workers sync.WaitGroup
	for w := range soakWorkers {
		workers.Go(func() { s.work(w) })
	}
	done := make(chan struct{})
	go func() { workers.Wait(); close(done) }()
	defer func() { // also when the injector fails the test: stop the workers first
		s.halt()
		<-done
	}()
	start = time.Now()
	s.inject(t, start.Add(workload), done)
	s.halt()
	<-done
	elapsed := time.Since(start)
	s.disarm()

	// Nothing borrowed, no transaction left open on the server (a COMMIT
	// whose connection was cut may still be running), and the engine works.
	assertNoBorrowed(t, s.e)
	settled := time.Now().Add(5 * time.Second)
	for backends(t, s.watcher, soakApp, "active")+backends(t, s.watcher, soakApp, "idle in transaction") > 0 {
		if time.Now().After(settled) {
			t.Fatalf("5s after the run, backends of the engine still run or hold a transaction open")
		}
		time.Sleep(10 * time.Millisecond)
	}
	faultStillWorks(t, s.e, "")
	s.check(t).report(t, s, elapsed)
}

// createTables creates the accounts, each with soakInitial, and the log.
func (s *soak) createTables(t *testing.T) {
	t.Helper()
	bg := context.Background()
	if err := s.watcher.RunDDL(bg, `CREATE TABLE soak_accounts (id int PRIMARY KEY, balance bigint NOT NULL);
		CREATE TABLE soak_log (id bigint PRIMARY KEY, op bigint NOT NULL, worker int NOT NULL,
			src int NOT NULL, dst int NOT NULL, amount bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.watcher.Exec(bg, piccolo.Querystring{
		SQL:  "INSERT INTO soak_accounts SELECT g, $1 FROM generate_series(0, $2::int - 1) g",
		Args: []any{soakInitial, soakAccounts},
	}); err != nil {
		t.Fatal(err)
	}
}

// halt stops the workers after their current operation.
func (s *soak) halt() { s.stopOnce.Do(func() { close(s.stop) }) }

func (s *soak) halted() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// inject picks a fault at random moments until the deadline, the workers
// finish, or a failure stops the run; it checks the total once a second.
// Every kind gets a turn first, in a random order.
func (s *soak) inject(t *testing.T, deadline time.Time, done <-chan struct{}) {
	t.Helper()
	rng := rand.New(rand.NewPCG(s.seed, math.MaxUint32))
	first := rng.Perm(int(numFaults) - 1)
	var lastRestart time.Time
	nextCheck, checked := time.Now().Add(time.Second), 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := 0; ; i++ {
		timer.Reset(time.Duration(20+rng.IntN(250)) * time.Millisecond)
		select {
		case <-done:
			return
		case <-s.stop:
			return
		case <-timer.C:
		}
		if time.Now().After(deadline) {
			return
		}
		kind := pickFault(rng)
		if i < len(first) {
			kind = faultKind(first[i] + 1)
		}
		if kind == faultRestart && time.Since(lastRestart) < soakRestartGap {
			kind = faultTerminate
		}
		if kind == faultRestart {
			lastRestart = time.Now()
		}
		s.injectOne(t, kind, rng)
		if time.Now().After(nextCheck) {
			nextCheck = time.Now().Add(time.Second)
			if sum := scalar[int64](t, context.Background(), s.watcher, "SELECT sum(balance)::bigint FROM soak_accounts"); sum != soakAccounts*soakInitial {
				t.Errorf("seed %d: the accounts hold %d, want %d: money was created or lost; stopping early", s.seed, sum, soakAccounts*soakInitial)
				return
			}
			var broken bool
			if checked, broken = s.checkEarly(t, checked); broken {
				t.Logf("an operation broke a rule: stopping early, the checker tells which")
				return
			}
		}
		if t.Failed() {
			return
		}
	}
}

// pickFault draws a kind by faultWeights.
func pickFault(rng *rand.Rand) faultKind {
	total := 0
	for _, w := range faultWeights {
		total += w
	}
	n := rng.IntN(total)
	for k, w := range faultWeights {
		if n < w {
			return faultKind(k)
		}
		n -= w
	}
	return faultTerminate
}

// injectOne injects kind now, or hands it to the next transaction.
func (s *soak) injectOne(t *testing.T, kind faultKind, rng *rand.Rand) {
	t.Helper()
	switch kind {
	case faultTerminate, faultKillIdle:
		state := ""
		if kind == faultKillIdle {
			state = "idle"
		}
		if n := terminateBackends(t, s.watcher, soakApp, state); n > 0 {
			s.injected[kind].Add(1)
			s.killed.Add(n)
		}
	case faultCutAfterCommit, faultCutAfterStatement:
		pattern := []byte("COMMIT\x00")
		if kind == faultCutAfterStatement {
			pattern = cutPatterns[rng.IntN(len(cutPatterns))]
		}
		if s.armedKind.CompareAndSwap(int64(faultNone), int64(kind)) { // counted when it cuts
			s.armed.Store(&pattern)
		}
	case faultRestart:
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := s.cluster.Restart(ctx); err != nil {
			t.Fatalf("seed %d: restart the server: %v", s.seed, err)
		}
		s.injected[kind].Add(1)
	default: // the next transaction applies it, counted then
		select {
		case s.tokens <- kind:
		default:
		}
	}
}

// countCuts counts the connections cutConn dropped, by the kind armed.
func (s *soak) countCuts() {
	for range s.cut {
		s.injected[s.armedKind.Swap(int64(faultNone))].Add(1)
	}
}

// disarm stops cutting connections.
func (s *soak) disarm() {
	if s.armed.Swap(nil) != nil {
		s.armedKind.Store(int64(faultNone))
	}
}
