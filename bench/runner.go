package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// result is a case's representative measurement: the round with the median
// ns/op.
type result struct {
	workload    string
	peer        string
	baseline    bool
	nsPerOp     float64
	bytesPerOp  int64
	allocsPerOp int64
	ops         int // iterations of the representative round
}

// runCases runs every case once per round, case after case within each
// workload (each round starting the workload with a different peer, so that
// drift spreads evenly), and returns one result per case.
func runCases(ctx context.Context, p *peers, cases []benchCase, rounds int, log io.Writer) ([]result, error) {
	samples := make([][]testing.BenchmarkResult, len(cases))
	groups := groupByWorkload(cases)
	for round := range rounds {
		for _, g := range groups {
			for k := range g {
				idx := g[(k+round)%len(g)]
				c := cases[idx]
				r, err := runCase(ctx, p, c)
				if err != nil {
					return nil, fmt.Errorf("%s / %s: %w", c.workload, c.peer, err)
				}
				samples[idx] = append(samples[idx], r)
				fmt.Fprintf(log, "round %d  %-32s %-44s %12.0f ns/op %9d B/op %7d allocs/op\n",
					round+1, c.workload, c.peer, nsPerOp(r), r.AllocedBytesPerOp(), r.AllocsPerOp())
			}
		}
	}
	results := make([]result, len(cases))
	for i, c := range cases {
		s := slices.Clone(samples[i])
		slices.SortFunc(s, func(a, b testing.BenchmarkResult) int {
			return compareFloat(nsPerOp(a), nsPerOp(b))
		})
		med := s[len(s)/2]
		results[i] = result{
			workload: c.workload, peer: c.peer, baseline: c.baseline,
			nsPerOp: nsPerOp(med), bytesPerOp: med.AllocedBytesPerOp(), allocsPerOp: med.AllocsPerOp(), ops: med.N,
		}
	}
	return results, nil
}

// groupByWorkload returns the indexes of cases, grouped by workload in
// order of first appearance.
func groupByWorkload(cases []benchCase) [][]int {
	var groups [][]int
	pos := map[string]int{}
	for i, c := range cases {
		g, ok := pos[c.workload]
		if !ok {
			g = len(groups)
			pos[c.workload] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return groups
}

func nsPerOp(r testing.BenchmarkResult) float64 {
	if r.N == 0 {
		return 0
	}
	return float64(r.T.Nanoseconds()) / float64(r.N)
}

func compareFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// runCase benchmarks one case with testing.Benchmark. An op's error stops
// the benchmark and is returned; so is a wrong number of inserted rows.
func runCase(ctx context.Context, p *peers, c benchCase) (testing.BenchmarkResult, error) {
	if c.inserts > 0 {
		if err := resetItems(ctx, p.conn); err != nil {
			return testing.BenchmarkResult{}, err
		}
	}
	var (
		ops      atomic.Int64
		mu       sync.Mutex
		firstErr error
	)
	r := testing.Benchmark(c.bench(ctx, &ops, func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}))
	if firstErr != nil {
		return r, firstErr
	}
	if r.N == 0 {
		return r, errors.New("benchmark did not run")
	}
	return r, c.checkInserted(ctx, p, ops.Load())
}

// bench returns the benchmark function of c. It counts the ops that
// succeeded in ops and reports the first failure to fail, which must be
// safe for concurrent use.
func (c benchCase) bench(ctx context.Context, ops *atomic.Int64, fail func(error)) func(*testing.B) {
	return func(b *testing.B) {
		b.ReportAllocs()
		if c.parallel {
			var next atomic.Int64
			b.SetParallelism(2) // 2 x GOMAXPROCS goroutines
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := c.op(ctx, int(next.Add(1))); err != nil {
						fail(err)
						return
					}
					ops.Add(1)
				}
			})
			return
		}
		for i := range b.N {
			if err := c.op(ctx, i); err != nil {
				fail(err)
				b.FailNow()
			}
			ops.Add(1)
		}
	}
}

// checkInserted compares the rows in items with what ops successful ops
// of c inserted since the last resetItems.
func (c benchCase) checkInserted(ctx context.Context, p *peers, ops int64) error {
	if c.inserts == 0 {
		return nil
	}
	got, err := insertedRows(ctx, p.conn)
	if err != nil {
		return err
	}
	return checkCount("rows inserted by the case", got, ops*int64(c.inserts))
}
