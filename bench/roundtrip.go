package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// roundTrips is the round-trip workloads' part of a run: their counts,
// and their times beside pgx's on the loopback and through a latencyProxy.
type roundTrips struct {
	rounds  int
	latency time.Duration // each way; 0: no run through the proxy
	counts  []rtCount     // in rtWorkloads' order
	direct  []result
	delayed []result // nil without latency
}

// runRoundTrips counts the round-trip workloads' round trips and times
// them beside pgx, on the loopback and then through a proxy delaying each
// direction by cfg.latency. p's connection resets and checks the rows they
// insert.
func runRoundTrips(ctx context.Context, p *peers, dsn string, cfg runConfig, log io.Writer) (rt roundTrips, err error) {
	rt.rounds, rt.latency = cfg.rounds, cfg.latency
	direct, err := openRTPeers(ctx, dsn, nil)
	if err != nil {
		return rt, err
	}
	defer direct.close()
	if rt.counts, err = countTurns(ctx, direct); err != nil {
		return rt, err
	}
	if rt.direct, err = runCases(ctx, p, rtCases(direct, ""), cfg.rounds, log); err != nil {
		return rt, err
	}
	if cfg.latency <= 0 {
		return rt, nil
	}
	connCfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return rt, fmt.Errorf("latency proxy: %w", err)
	}
	proxy, err := startLatencyProxy(net.JoinHostPort(connCfg.Host, strconv.Itoa(int(connCfg.Port))), cfg.latency)
	if err != nil {
		return rt, err
	}
	defer proxy.close()
	delayed, err := openRTPeers(ctx, dsn, proxy)
	if err != nil {
		return rt, err
	}
	defer delayed.close()
	if err := checkProxy(ctx, proxy, func(ctx context.Context) error { return delayed.pool.Ping(ctx) }); err != nil {
		return rt, err
	}
	counts, err := countTurns(ctx, delayed)
	if err != nil {
		return rt, err
	}
	if !slices.Equal(counts, rt.counts) {
		return rt, errors.New("the round trips counted through the latency proxy differ from those on the loopback")
	}
	rt.delayed, err = runCases(ctx, p, rtCases(delayed, latencySuffix(cfg.latency)), cfg.rounds, log)
	return rt, err
}

// latencySuffix names the workloads timed through the proxy.
func latencySuffix(latency time.Duration) string {
	return fmt.Sprintf(" (%s each way)", latency)
}

// rtRatio returns pgx's time in results for the workload named name, and
// the piccolo-go case's time over it (0 and 0 when pgx's is missing).
func rtRatio(results []result, name string) (pgxNs, ratio float64) {
	var pgxR, picR result
	for _, r := range results {
		if r.workload != name {
			continue
		}
		if r.baseline {
			pgxR = r
		} else {
			picR = r
		}
	}
	if pgxR.nsPerOp == 0 {
		return 0, 0
	}
	return pgxR.nsPerOp, picR.nsPerOp / pgxR.nsPerOp
}

// markdown is the report's round-trip section.
func (rt roundTrips) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("\n## Round trips\n\n")
	w("Issue 12's workloads, hand-written in pgx (on a pgxpool) and written with piccolo-go, each on a pool of one "+
		"connection whose round trips a counting net.Conn counts (client turns: the client writing after the server "+
		"answered; warm statements). Times are the median of %d interleaved rounds; lower is better.", rt.rounds)
	if rt.latency > 0 {
		w(" The last columns run through a loopback proxy that delays every chunk by %s in each direction "+
			"(a round trip of %s, as across zones), so that a round trip saved shows.", rt.latency, 2*rt.latency)
	}
	w("\n\n| workload | pgx round trips | piccolo-go round trips | target | pgx | piccolo-go × pgx |")
	if rt.latency > 0 {
		w(" pgx, %s each way | × pgx, %s each way |", rt.latency, rt.latency)
	}
	w("\n|---|---:|---:|---:|---:|---:|")
	if rt.latency > 0 {
		w("---:|---:|")
	}
	w("\n")
	for i, wl := range rtWorkloads() {
		c := rt.counts[i]
		ns, ratio := rtRatio(rt.direct, wl.name)
		w("| %s | %d | %d | %d | %s | %.2f |", wl.name, c.pgx, c.piccolo, wl.target, fmtNs(ns), ratio)
		if rt.latency > 0 {
			ns, ratio := rtRatio(rt.delayed, wl.name+latencySuffix(rt.latency))
			w(" %s | %.2f |", fmtNs(ns), ratio)
		}
		w("\n")
	}
	return b.String()
}

// targets checks the round trips against the targets.
func (rt roundTrips) targets() []target {
	var missed []string
	for i, wl := range rtWorkloads() {
		if i < len(rt.counts) && rt.counts[i].piccolo > wl.target {
			missed = append(missed, fmt.Sprintf("%s %d (target %d)", wl.name, rt.counts[i].piccolo, wl.target))
		}
	}
	detail := "every workload at its target"
	if len(missed) > 0 {
		detail = "above it: " + strings.Join(missed, "; ")
	}
	return []target{{name: "round trips at issue 12's targets", met: len(missed) == 0 && len(rt.counts) > 0, detail: detail}}
}
