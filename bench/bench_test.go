package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
)

// The go test benchmarks run the same cases as the command, for profiling:
//
//	go test -run '^$' -bench 'Queries/point_read_(typed)/piccolo' -cpuprofile cpu.out
//	go test -run '^$' -bench 'Stream/piccolo-go_Batch' -memprofile mem.out
//
// They set up a database like the command (DATABASE_URL or a throw-away
// cluster); PICCOLO_BENCH_STREAM_ROWS sets the streamed rows (100,000).

// testEnv is the database and connections the benchmarks share.
type testEnv struct {
	srv        *server
	peers      *peers
	streamRows int64
}

var env testEnv

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	ctx := context.Background()
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var closers []func(context.Context) error // run last first
	defer func() {
		for _, c := range slices.Backward(closers) {
			if err := c(ctx); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}
	}()
	env.streamRows = 100_000
	if s := os.Getenv("PICCOLO_BENCH_STREAM_ROWS"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fail(fmt.Errorf("PICCOLO_BENCH_STREAM_ROWS: %w", err))
		}
		env.streamRows = n
	}
	srv, err := openServer(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		return fail(err)
	}
	env.srv = srv
	closers = append(closers, srv.close)
	p, err := openPeers(ctx, srv.dsn, int32(2*runtime.GOMAXPROCS(0)))
	if err != nil {
		return fail(err)
	}
	env.peers = p
	closers = append(closers, p.close)
	if err := schema(ctx, p.conn, int(env.streamRows)); err != nil {
		return fail(err)
	}
	return m.Run()
}

// BenchmarkQueries runs every query case as Queries/<workload>/<library>.
func BenchmarkQueries(b *testing.B) {
	ctx := b.Context()
	for _, c := range allCases(env.peers) {
		b.Run(c.workload+"/"+c.peer, func(b *testing.B) {
			if err := resetItems(ctx, env.peers.conn); err != nil {
				b.Fatal(err)
			}
			var ops atomic.Int64
			c.bench(ctx, &ops, func(err error) { b.Error(err) })(b)
			if err := c.checkInserted(ctx, env.peers, ops.Load()); err != nil {
				b.Error(err)
			}
		})
	}
}

// BenchmarkStream reads the streaming table once per iteration with each
// streaming case, in this process (peak RSS is the command's business).
func BenchmarkStream(b *testing.B) {
	ctx := b.Context()
	for _, c := range streamCases() {
		b.Run(c.id(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				n, err := c.run(ctx, env.srv.dsn, c.batch)
				if err != nil {
					b.Fatal(err)
				}
				if err := checkCount(c.id(), n, env.streamRows); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(env.streamRows*int64(b.N))/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
