package piccolo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// healthQuery reports whether a node is in recovery, how far its replay
// is behind, in seconds, and its replay position (NULL on a primary). The
// lag is zero when the node has replayed all it received (an idle primary
// writes nothing, so the age of the last replayed commit alone would grow
// without meaning anything), infinite when WAL waits and nothing has been
// replayed yet.
const healthQuery = `SELECT pg_is_in_recovery(),
	CASE WHEN NOT pg_is_in_recovery() OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
	     ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 'Infinity') END::float8,
	pg_last_wal_replay_lsn()::text`

// replayQuery is the on-demand re-check of rule 6.
const replayQuery = `SELECT COALESCE(pg_last_wal_replay_lsn(), '0/0')::text`

// router holds the nodes that reads may use, refreshed by health checks.
type router struct {
	cfg     ReadRouting
	nodes   []*routedNode // routed extra nodes, then discovered hosts
	healthy atomic.Pointer[[]*routedNode]
	next    atomic.Uint64
	kick    chan struct{} // asks the background loop for a check now

	mu   sync.Mutex // guards stop and done
	stop context.CancelFunc
	done chan struct{}
}

type routedNode struct {
	name       string
	engine     *PostgresEngine
	discovered bool                     // routed only while in recovery (rule 2)
	replayed   atomic.Uint64            // LSN: the last check's or re-check's
	last       atomic.Pointer[ReadNode] // the last check's findings
}

func newRouter(e *PostgresEngine, cfg ReadRouting) (*router, error) {
	if cfg.MaxLag < 0 || cfg.CheckInterval < 0 {
		return nil, fmt.Errorf("piccolo: ReadRouting: negative MaxLag or CheckInterval")
	}
	if cfg.CheckInterval == 0 {
		cfg.CheckInterval = time.Second
	}
	names := cfg.Nodes
	if len(names) == 0 {
		names = slices.Sorted(maps.Keys(e.nodes))
	}
	r := &router{cfg: cfg, kick: make(chan struct{}, 1)}
	for _, name := range names {
		node, ok := e.nodes[name]
		if !ok {
			return nil, wrapErr("ReadRouting", fmt.Errorf("%w: %q", ErrUnknownNode, name))
		}
		r.nodes = append(r.nodes, &routedNode{name: name, engine: node})
	}
	discovered, err := e.discoverNodes(cfg)
	if err != nil {
		return nil, err
	}
	r.nodes = append(r.nodes, discovered...)
	r.healthy.Store(&[]*routedNode{})
	return r, nil
}

// pick returns the node a read under ctx runs on, or false when it must
// go to the primary (rules 3 and 6).
func (r *router) pick(ctx context.Context) (*routedNode, bool) {
	healthy := *r.healthy.Load()
	if len(healthy) == 0 {
		return nil, false
	}
	start := r.next.Add(1)
	after := ReadAfter(ctx)
	if after == 0 {
		return healthy[start%uint64(len(healthy))], true
	}
	if after == lsnUnknown {
		return nil, false
	}
	for i := range uint64(len(healthy)) {
		if n := healthy[(start+i)%uint64(len(healthy))]; LSN(n.replayed.Load()) >= after {
			return n, true
		}
	}
	n := healthy[start%uint64(len(healthy))]
	var text string
	err := n.engine.QueryFunc(withoutReadAfter(ctx), Querystring{SQL: replayQuery}, func(rows pgx.Rows) error {
		return rows.Scan(&text)
	})
	if err != nil {
		if ctx.Err() == nil && nodeDown(err) {
			r.markDown(n.name)
		}
		return nil, false
	}
	replayed, err := ParseLSN(text)
	if err != nil {
		return nil, false
	}
	n.replayed.Store(uint64(replayed))
	return n, replayed >= after
}

// markDown removes a node that failed between two checks and asks for a
// check now; a check brings it back when it answers again.
func (r *router) markDown(name string) {
	defer r.askCheck()
	for {
		old := r.healthy.Load()
		var kept []*routedNode
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

// askCheck asks the background loop, if running, for a check now.
func (r *router) askCheck() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// start checks every node once, then keeps checking in the background
// until stopped.
func (r *router) start(ctx context.Context, logger *slog.Logger) {
	ctx = withoutReadAfter(ctx) // the checks write nothing
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
			case <-r.kick:
			}
			r.check(bg, logger)
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
	r.healthy.Store(&[]*routedNode{})
}

// check probes every node in parallel and publishes the candidates.
func (r *router) check(ctx context.Context, logger *slog.Logger) {
	if ctx.Err() != nil {
		return
	}
	var wg sync.WaitGroup
	for _, n := range r.nodes {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, max(r.cfg.CheckInterval, time.Second))
			defer cancel()
			found, err := r.probe(ctx, n)
			if err != nil && ctx.Err() == nil {
				logger.LogAttrs(ctx, slog.LevelWarn, "piccolo: node is not used for reads", slog.String("node", n.name), slog.String("reason", err.Error()))
			}
			n.replayed.Store(uint64(found.Replayed))
			n.last.Store(&found)
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // halted: halt empties the candidates
	}
	healthy := make([]*routedNode, 0, len(r.nodes))
	for _, n := range r.nodes {
		if n.last.Load().Routed {
			healthy = append(healthy, n)
		}
	}
	r.healthy.Store(&healthy)
}

// errLagging is why a node behind by more than MaxLag is skipped.
var errLagging = errors.New("replication lag above MaxLag")

// probe asks n for its state; err says why it is not routed to.
func (r *router) probe(ctx context.Context, n *routedNode) (found ReadNode, err error) {
	found = ReadNode{Name: n.name, Discovered: n.discovered}
	var lagSeconds float64
	var replayed *string
	err = n.engine.QueryFunc(ctx, Querystring{SQL: healthQuery}, func(rows pgx.Rows) error {
		return rows.Scan(&found.Standby, &lagSeconds, &replayed)
	})
	if err != nil {
		return found, err
	}
	found.Answered = true
	found.Lag = time.Duration(math.MaxInt64)
	if lag := lagSeconds * float64(time.Second); lag < float64(math.MaxInt64) {
		found.Lag = time.Duration(lag)
	}
	if replayed != nil {
		if found.Replayed, err = ParseLSN(*replayed); err != nil {
			return found, err
		}
	}
	switch {
	case n.discovered && !found.Standby:
		return found, nil // not a warning: the primary is among the hosts
	case r.cfg.MaxLag > 0 && lagSeconds > r.cfg.MaxLag.Seconds():
		return found, fmt.Errorf("%w: %.3fs behind", errLagging, lagSeconds)
	}
	found.Routed = true
	return found, nil
}

// report returns the nodes' last findings, Routed as now (a node marked
// down since is not).
func (r *router) report() []ReadNode {
	healthy := *r.healthy.Load()
	out := make([]ReadNode, 0, len(r.nodes))
	for _, n := range r.nodes {
		found := ReadNode{Name: n.name, Discovered: n.discovered}
		if last := n.last.Load(); last != nil {
			found = *last
		}
		found.Replayed = LSN(n.replayed.Load())
		found.Routed = slices.Contains(healthy, n)
		out = append(out, found)
	}
	return out
}
