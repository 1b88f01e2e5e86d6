// Command bench measures piccolo-go beside raw pgx, database/sql, sqlx, GORM
// and Bun: every library does the same workloads on the same server in the
// same run, interleaved over several rounds, and every operation checks its
// result (rows read, rows affected, ids returned). It writes the results as
// Markdown (RESULTS.md) and a chart (results.png).
//
//	cd bench && go run .            # the full run, a few minutes
//	cd bench && go run . -quick     # every workload briefly, for CI
//	cd bench && go run . -only Atomic -rounds 9   # only the workloads named so
//
// The round-trip workloads (issue 12's table) run twice: on the loopback,
// and through a proxy that delays each direction by -latency (1 ms), as a
// network between zones would; each is shown with its round trips counted.
//
// The server is DATABASE_URL's (whose user must be allowed to create
// databases), or a throw-away cluster started from the machine's PostgreSQL
// programs when DATABASE_URL is unset. Each run creates its own database and
// drops it at the end.
//
// Streaming cases run each in a process of their own (this program,
// re-executed with -stream-child) so that each reports its own peak RSS.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	testing.Init() // testing.Benchmark reads -test.benchtime
	var (
		quick        = flag.Bool("quick", false, "run every workload briefly (CI): 1 round, 3 iterations a case, 10,000 streamed rows")
		outDir       = flag.String("out", ".", "directory for RESULTS.md and results.png")
		rounds       = flag.Int("rounds", 9, "rounds of every query case; the median round is reported")
		benchtime    = flag.String("benchtime", "80ms", "time (or Nx iterations) per query case and round")
		streamRows   = flag.Int64("stream-rows", 1_000_000, "rows in the streaming table")
		streamRounds = flag.Int("stream-rounds", 3, "rounds of every streaming case, each in a new process")
		latency      = flag.Duration("latency", time.Millisecond, "delay each way of the round-trip workloads' second run, through a loopback proxy (0: no such run)")
		child        = flag.String("stream-child", "", "internal: run one streaming case and print its result")
		only         = flag.String("only", "", "run only the query workloads whose name contains this (no streaming, no report written): for a quick look at one")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *child != "" {
		if err := runStreamChild(ctx, *child, os.Getenv("PICCOLO_BENCH_DSN"), *streamRows, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	cfg := runConfig{outDir: *outDir, rounds: *rounds, benchtime: *benchtime,
		streamRows: *streamRows, streamRounds: *streamRounds, quick: *quick, only: *only, latency: *latency}
	if *quick {
		cfg.rounds, cfg.benchtime, cfg.streamRows, cfg.streamRounds = 1, "3x", 10_000, 1
	}
	if err := run(ctx, cfg, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// runConfig is what a run measures and where its report goes.
type runConfig struct {
	outDir       string
	rounds       int
	benchtime    string
	streamRows   int64
	streamRounds int
	quick        bool
	only         string // run only the query workloads whose name contains it
	latency      time.Duration
}

// run sets up the server, runs every case and writes the report.
func run(ctx context.Context, cfg runConfig, log io.Writer) (err error) {
	if cfg.rounds < 1 || cfg.streamRounds < 1 {
		return fmt.Errorf("-rounds and -stream-rounds must be at least 1, got %d and %d", cfg.rounds, cfg.streamRounds)
	}
	if err := flag.Set("test.benchtime", cfg.benchtime); err != nil {
		return fmt.Errorf("-benchtime: %w", err)
	}
	if err := os.MkdirAll(cfg.outDir, 0o755); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	start, startLoad := time.Now(), loadAverage()
	srv, err := openServer(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, srv.close(ctx)) }()

	conn, err := pgx.Connect(ctx, srv.dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	fmt.Fprintf(log, "bench: filling the tables (%d rows to stream)\n", cfg.streamRows)
	if err := schema(ctx, conn, int(cfg.streamRows)); err != nil {
		return err
	}
	info, err := serverInfo(ctx, conn)
	if err != nil {
		return err
	}

	p, err := openPeers(ctx, srv.dsn, int32(2*runtime.GOMAXPROCS(0)))
	if err != nil {
		return err
	}
	cases := allCases(p)
	if cfg.only != "" {
		cases = slices.DeleteFunc(cases, func(c benchCase) bool { return !strings.Contains(c.workload, cfg.only) })
	}
	results, err := runCases(ctx, p, cases, cfg.rounds, log)
	var rt roundTrips
	if err == nil && cfg.only == "" {
		rt, err = runRoundTrips(ctx, p, srv.dsn, cfg, log)
	}
	if err = errors.Join(err, p.close(ctx)); err != nil || cfg.only != "" {
		return err
	}
	streams, err := runStreams(ctx, srv.dsn, cfg.streamRows, cfg.streamRounds, log)
	if err != nil {
		return err
	}

	rep := report{
		machine: machineInfo(), server: info, cfg: cfg,
		results: results, rt: rt, streams: streams, elapsed: time.Since(start), load: [2]string{startLoad, loadAverage()},
	}
	md := filepath.Join(cfg.outDir, "RESULTS.md")
	if err := os.WriteFile(md, []byte(rep.markdown()), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	png := filepath.Join(cfg.outDir, "results.png")
	if err := rep.chart(png); err != nil {
		return err
	}
	fmt.Fprintf(log, "bench: wrote %s and %s in %s\n", md, png, time.Since(start).Round(time.Second))
	return nil
}
