package piccolo

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Node returns the extra node registered under name, or ErrUnknownNode.
func (e *PostgresEngine) Node(name string) (*PostgresEngine, error) {
	node, ok := e.nodes[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownNode, name)
	}
	return node, nil
}

// StartConnectionPool starts the engine's pool and those of its extra nodes,
// and checks that each server answers. The engine's own server must answer:
// if it does not, the error says why and no pool this call started stays.
// An extra node that does not answer (every one, routed or not) does not
// stop the start: its pool is kept and connects when used, a warning names
// the node, ReadRouting skips it until a health check passes, and OnNode
// returns the connection error. ctx bounds the start: if it ends, the call
// fails. A second call keeps the running pools and logs a warning.
func (e *PostgresEngine) StartConnectionPool(ctx context.Context) error {
	if e.closed.Load() {
		return ErrEngineClosed
	}
	started, err := e.startPool(ctx, func(err error) error {
		return wrapErr("start pool", err)
	})
	if err != nil {
		return err
	}
	startedHere := []*PostgresEngine{}
	if started {
		startedHere = append(startedHere, e)
	}
	for name, node := range e.nodes {
		started, err := node.startPool(ctx, func(err error) error {
			if ctx.Err() != nil {
				return err
			}
			e.logger.LogAttrs(ctx, slog.LevelWarn, "piccolo: extra node does not answer; its pool connects when used",
				slog.String("node", name), slog.String("reason", err.Error()))
			return nil
		})
		if err != nil {
			// Leave nothing half-started by this call: the caller sees one
			// failure. Pools that were running before stay.
			closeOwnPools(startedHere)
			return wrapErr(fmt.Sprintf("start pool of node %q", name), err)
		}
		if started {
			startedHere = append(startedHere, node)
		}
	}
	if e.router != nil {
		for _, node := range e.router.discovered() {
			// Not pinged: the first health check finds out.
			started, err := node.startPool(ctx, nil)
			if err != nil {
				closeOwnPools(startedHere)
				return err
			}
			if started {
				startedHere = append(startedHere, node)
			}
		}
		e.router.start(ctx, e.logger)
	}
	return nil
}

// startPool starts e's own pool and reports whether it started one. When
// the server does not answer a ping, noAnswer decides: an error closes the
// pool and is returned; nil keeps the pool, which connects when used. A nil
// noAnswer skips the ping.
func (e *PostgresEngine) startPool(ctx context.Context, noAnswer func(error) error) (bool, error) {
	e.poolMu.Lock()
	defer e.poolMu.Unlock()
	if e.pool.Load() != nil {
		e.logger.WarnContext(ctx, "piccolo: a connection pool is already running; keeping it")
		return false, nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, e.poolConfig.Copy())
	if err != nil {
		return false, fmt.Errorf("piccolo: create pool: %w", err)
	}
	if noAnswer != nil {
		if err := pool.Ping(ctx); err != nil {
			if err := noAnswer(err); err != nil {
				pool.Close()
				return false, err
			}
		}
	}
	e.pool.Store(pool)
	return true, nil
}

// closeOwnPools closes the pools of engines, not their nodes'.
func closeOwnPools(engines []*PostgresEngine) {
	for _, eng := range engines {
		eng.closeOwnPool()
	}
}

// closeOwnPool closes e's pool, not its nodes'.
func (e *PostgresEngine) closeOwnPool() {
	e.poolMu.Lock()
	p := e.pool.Swap(nil)
	e.poolMu.Unlock()
	if p != nil {
		p.Close()
	}
}

// CloseConnectionPool closes the engine's pool and its nodes' pools. It
// waits for borrowed connections to come back until ctx ends, then returns
// ctx's error while the pools finish closing in the background. It returns
// ErrNoPool when the engine has no pool running.
func (e *PostgresEngine) CloseConnectionPool(ctx context.Context) error {
	e.haltRouter()
	pools := e.detachPools()
	if len(pools) == 0 {
		return ErrNoPool
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, p := range pools {
			p.Close()
		}
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("piccolo: close pool: borrowed connections still out: %w", ctx.Err())
	}
}

// Close closes the engine's and its nodes' pools, waiting for every
// borrowed connection to come back. It is safe to call more than once and
// when no pool is running.
//
// After Close the engine refuses to run anything (ErrEngineClosed), its
// extra nodes included; transactions begun before it may still end. Use
// CloseConnectionPool to close the pools and go on with one-shot
// connections.
func (e *PostgresEngine) Close() {
	e.closed.Store(true)
	for _, n := range e.nodeList() {
		n.closed.Store(true)
	}
	e.closeAll()
}

func (e *PostgresEngine) closeAll() {
	e.haltRouter()
	for _, p := range e.detachPools() {
		p.Close()
	}
}

func (e *PostgresEngine) haltRouter() {
	if e.router != nil {
		e.router.halt()
	}
}

// detachPools removes the engine's and its nodes' pools so that new queries
// use one-shot connections, and returns them for closing.
func (e *PostgresEngine) detachPools() []*pgxpool.Pool {
	var pools []*pgxpool.Pool
	for _, eng := range append([]*PostgresEngine{e}, e.nodeList()...) {
		eng.poolMu.Lock()
		if p := eng.pool.Swap(nil); p != nil {
			pools = append(pools, p)
		}
		eng.poolMu.Unlock()
	}
	return pools
}

// nodeList returns the extra nodes and the engines of discovered hosts.
func (e *PostgresEngine) nodeList() []*PostgresEngine {
	nodes := make([]*PostgresEngine, 0, len(e.nodes))
	for _, n := range e.nodes {
		nodes = append(nodes, n)
	}
	if e.router != nil {
		nodes = append(nodes, e.router.discovered()...)
	}
	return nodes
}

// Stat returns a snapshot of the statistics of the engine's pool, as
// pgxpool.Pool's Stat does, so that collectors written for a pgxpool.Pool
// (otelpgx.RecordStats, pgxpoolprometheus) take the engine, or one of its
// nodes, unchanged. It never returns nil: without a running pool (before
// StartConnectionPool, after CloseConnectionPool or Close, in one-shot
// mode) it is a snapshot of a pool that never ran: every count and
// duration zero, MaxConns the configured limit.
func (e *PostgresEngine) Stat() *pgxpool.Stat {
	if p := e.pool.Load(); p != nil {
		return p.Stat()
	}
	e.idleStatOnce.Do(func() { e.idleStat = neverRunStat(e.poolConfig) })
	return e.idleStat
}

// neverRunStat returns the statistics of a pool made from cfg that never
// connected: pgxpool.Stat has no usable zero value, so a pool is created
// with no minimum of connections (it connects to nothing) and closed at
// once. NewWithConfig fails only below one connection (a pool that could
// not start either): one is then the limit reported.
func neverRunStat(cfg *pgxpool.Config) *pgxpool.Stat {
	cfg = cfg.Copy()
	cfg.MinConns, cfg.MinIdleConns = 0, 0
	cfg.MaxConns = max(cfg.MaxConns, 1)
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		panic("piccolo: pgxpool refused a pool of one connection: " + err.Error()) // cannot happen: MaxConns >= 1
	}
	p.Close()
	return p.Stat()
}

// Config returns a copy of the pool configuration the engine's pool is
// made from (the DSN, the pool settings and Configure's changes, with the
// engine's tracer set), as pgxpool.Pool's Config does. It is available
// with or without a running pool.
func (e *PostgresEngine) Config() *pgxpool.Config {
	return e.poolConfig.Copy()
}
