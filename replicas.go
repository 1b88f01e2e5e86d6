package piccolo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// ReadRouting sends reads made outside a transaction to healthy extra
// nodes, round-robin, and falls back to the primary when none is healthy.
//
// A read is a statement run with the Read option (the query layer adds it
// to Select and Objects without a locking clause, their batches, Count and
// Exists) or a
// Batch opened with it, outside a transaction and without OnNode. Writes,
// locking reads, statements inside a transaction and everything without
// Read go to the primary.
//
// Only a connection-level failure (the node refuses or drops the
// connection) takes a node out of routing until its next health check; an
// error about the statement (from pgx before sending, or from PostgreSQL) is
// returned naming the node, which stays in use. A node that does not answer
// when StartConnectionPool runs is out until a health check passes.
type ReadRouting struct {
	// Nodes names the extra nodes to route to; empty means all of them.
	Nodes []string
	// MaxLag skips a node whose replay is further behind than this; zero
	// accepts any lag.
	MaxLag time.Duration
	// CheckInterval is how often nodes are checked; zero means one second.
	CheckInterval time.Duration
}

// Read marks a statement or batch as a read that ReadRouting may send to a
// replica. It changes nothing without ReadRouting, inside a transaction or
// with OnNode, and CopyFrom ignores it. A read whose replica fails at the
// connection level before a row reached the caller runs again on the
// primary: mark only statements that may run twice.
func Read() Option {
	return Option{kind: optRead}
}

// healthQuery reports whether a node is in recovery and how far its replay
// is behind, in seconds: zero when it has replayed all it received (an idle
// primary writes nothing, so the age of the last replayed commit alone
// would grow without meaning anything), infinite when WAL waits and nothing
// has been replayed yet.
const healthQuery = `SELECT pg_is_in_recovery(),
	CASE WHEN NOT pg_is_in_recovery() OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
	     ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 'Infinity') END::float8`

// router holds the nodes that reads may use, refreshed by health checks.
type router struct {
	cfg     ReadRouting
	nodes   []routedNode
	healthy atomic.Pointer[[]routedNode]
	next    atomic.Uint64

	mu   sync.Mutex // guards stop and done
	stop context.CancelFunc
	done chan struct{}
}

type routedNode struct {
	name   string
	engine *PostgresEngine
}

func newRouter(cfg ReadRouting, nodes map[string]*PostgresEngine) (*router, error) {
	if cfg.MaxLag < 0 || cfg.CheckInterval < 0 {
		return nil, fmt.Errorf("piccolo: ReadRouting: negative MaxLag or CheckInterval")
	}
	if cfg.CheckInterval == 0 {
		cfg.CheckInterval = time.Second
	}
	names := cfg.Nodes
	if len(names) == 0 {
		for name := range nodes {
			names = append(names, name)
		}
	}
	r := &router{cfg: cfg}
	for _, name := range names {
		node, ok := nodes[name]
		if !ok {
			return nil, wrapErr("ReadRouting", fmt.Errorf("%w: %q", ErrUnknownNode, name))
		}
		r.nodes = append(r.nodes, routedNode{name: name, engine: node})
	}
	r.healthy.Store(&[]routedNode{})
	return r, nil
}

// pick returns the next healthy node, or false when reads must go to the
// primary.
func (r *router) pick() (routedNode, bool) {
	healthy := *r.healthy.Load()
	if len(healthy) == 0 {
		return routedNode{}, false
	}
	return healthy[r.next.Add(1)%uint64(len(healthy))], true
}

// markDown removes a node that failed between two checks; the next check
// brings it back when it answers again.
func (r *router) markDown(name string) {
	for {
		old := r.healthy.Load()
		var kept []routedNode
		for _, n := range *old {
			if n.name != name {
				kept = append(kept, n)
			}
		}
		if len(kept) == len(*old) || r.healthy.CompareAndSwap(old, &kept) {
			return
		}
	}
}

// start checks every node once, then keeps checking in the background
// until stopped.
func (r *router) start(ctx context.Context, logger *slog.Logger) {
	r.check(ctx, logger)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stop != nil {
		return
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.stop, r.done = cancel, make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		t := time.NewTicker(r.cfg.CheckInterval)
		defer t.Stop()
		for {
			select {
			case <-bg.Done():
				return
			case <-t.C:
				r.check(bg, logger)
			}
		}
	}(r.done)
}

// halt stops the background checks and waits for them to end.
func (r *router) halt() {
	r.mu.Lock()
	stop, done := r.stop, r.done
	r.stop, r.done = nil, nil
	r.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	r.healthy.Store(&[]routedNode{})
}

// check probes every node in parallel and publishes the healthy ones.
func (r *router) check(ctx context.Context, logger *slog.Logger) {
	ok := make([]bool, len(r.nodes))
	var wg sync.WaitGroup
	for i, n := range r.nodes {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, max(r.cfg.CheckInterval, time.Second))
			defer cancel()
			err := r.probe(ctx, n.engine)
			if err != nil && ctx.Err() == nil {
				logger.LogAttrs(ctx, slog.LevelWarn, "piccolo: node is not used for reads", slog.String("node", n.name), slog.String("reason", err.Error()))
			}
			ok[i] = err == nil
		})
	}
	wg.Wait()
	healthy := make([]routedNode, 0, len(r.nodes))
	for i, n := range r.nodes {
		if ok[i] {
			healthy = append(healthy, n)
		}
	}
	r.healthy.Store(&healthy)
}

// errLagging is why a node behind by more than MaxLag is skipped.
var errLagging = errors.New("replication lag above MaxLag")

func (r *router) probe(ctx context.Context, node *PostgresEngine) error {
	var inRecovery bool
	var lagSeconds float64
	err := node.QueryFunc(ctx, Querystring{SQL: healthQuery}, func(rows pgx.Rows) error {
		return rows.Scan(&inRecovery, &lagSeconds)
	})
	if err != nil {
		return err
	}
	if r.cfg.MaxLag > 0 && lagSeconds > r.cfg.MaxLag.Seconds() {
		return fmt.Errorf("%w: %.3fs behind", errLagging, lagSeconds)
	}
	return nil
}
