package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// streamSelect reads every row of the streaming table.
const streamSelect = "SELECT " + itemColumns + " FROM stream_items"

// streamCase reads the whole streaming table in a process of its own, so
// that its peak RSS is its own.
type streamCase struct {
	name     string
	batch    int    // rows per round trip; 0 for a plain query
	baseline string // the id of the case its ratio divides by; "" if it is one
	run      streamFunc
}

// The streaming baselines: a plain pgx query and hand-written cursor loops.
const (
	streamPgxPlain      = "pgx (conn) plain query"
	streamPgxCursor     = "pgx DECLARE/FETCH loop"
	streamPgxCursorMaps = "pgx DECLARE/FETCH loop (maps)"
)

// id is the case's unique name, which the child process is given.
func (s streamCase) id() string {
	if s.batch == 0 {
		return s.name
	}
	return s.name + " / " + strconv.Itoa(s.batch)
}

// streamCases returns every streaming case: plain queries, and cursors in
// batches of 100, 1,000 and 10,000 rows. Typed cursors compare with the
// typed pgx loop of the same batch size, maps with the loop collecting maps.
func streamCases() []streamCase {
	cases := []streamCase{
		{name: streamPgxPlain, run: opened(openConn, streamPgx)},
		{name: "piccolo-go QueryFunc (typed)", baseline: streamPgxPlain, run: opened(openEngine, streamPiccoloQueryFunc)},
		{name: peerSQL + " rows", baseline: streamPgxPlain, run: opened(openStdlib, streamSQL)},
		{name: peerSqlx + " StructScan", baseline: streamPgxPlain, run: opened(openStdlib, streamSqlx)},
		{name: peerGorm + " Rows + ScanRows", baseline: streamPgxPlain, run: opened(openGorm, streamGormRows)},
		{name: peerBun + " rows + ScanRow", baseline: streamPgxPlain, run: opened(openStdlib, streamBun)},
	}
	for _, n := range []int{100, 1000, 10000} {
		typed := streamCase{name: streamPgxCursor, batch: n, run: streamPgxCursorLoop(scanTyped)}
		maps := streamCase{name: streamPgxCursorMaps, batch: n, run: streamPgxCursorLoop(scanMap)}
		cases = append(cases, typed,
			streamCase{name: "piccolo-go Batch NextFunc (typed)", batch: n, baseline: typed.id(), run: opened(openEngine, streamPiccoloBatchTyped)},
			maps,
			streamCase{name: "piccolo-go Batch Next (maps)", batch: n, baseline: maps.id(), run: opened(openEngine, streamPiccoloBatchMaps)},
			streamCase{name: peerGorm + " FindInBatches", batch: n, baseline: typed.id(), run: opened(openGorm, streamGormBatches)},
		)
	}
	return cases
}

// streamResult is what a child process reports.
type streamResult struct {
	ID         string  `json:"id"`
	Rows       int64   `json:"rows"`
	Seconds    float64 `json:"seconds"`
	StartKiB   int64   `json:"start_kib"` // VmHWM after connecting, before streaming
	PeakKiB    int64   `json:"peak_kib"`  // VmHWM at the end
	RowsPerSec float64 `json:"rows_per_sec"`
}

// runStreamChild is the child process: it runs case id against dsn and
// prints a streamResult as JSON.
func runStreamChild(ctx context.Context, id, dsn string, wantRows int64, out io.Writer) error {
	i := slices.IndexFunc(streamCases(), func(s streamCase) bool { return s.id() == id })
	if i < 0 {
		return fmt.Errorf("unknown streaming case %q", id)
	}
	c := streamCases()[i]
	start := time.Now()
	rows, err := c.run(ctx, dsn, c.batch)
	elapsed := time.Since(start)
	if err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	if err := checkCount(id, rows, wantRows); err != nil {
		return err
	}
	peak, err := vmHWM()
	if err != nil {
		return err
	}
	res := streamResult{ID: id, Rows: rows, Seconds: elapsed.Seconds(), PeakKiB: peak,
		StartKiB: startHWM, RowsPerSec: float64(rows) / elapsed.Seconds()}
	return json.NewEncoder(out).Encode(res)
}

// startHWM is the child's VmHWM once connected, recorded by connected.
var startHWM int64

// connected records the child's peak RSS before any row is read.
func connected() error {
	var err error
	startHWM, err = vmHWM()
	return err
}

// vmHWM reads the process's peak resident set size, in KiB, from
// /proc/self/status.
func vmHWM() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read peak RSS: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmHWM %q: %w", rest, err)
			}
			return kib, nil
		}
	}
	return 0, errors.Join(errors.New("no VmHWM in /proc/self/status"), sc.Err())
}

// runStreams runs every streaming case once per round, each in a new
// process, and returns the round with the median time of each case, with
// the highest peak RSS any of its rounds reached.
func runStreams(ctx context.Context, dsn string, rows int64, rounds int, log io.Writer) ([]streamResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	cases := streamCases()
	samples := make([][]streamResult, len(cases))
	for round := range rounds {
		for i, c := range cases {
			cmd := exec.CommandContext(ctx, exe, "-stream-child", c.id(), "-stream-rows", strconv.FormatInt(rows, 10))
			cmd.Env = append(os.Environ(), "PICCOLO_BENCH_DSN="+dsn)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				return nil, fmt.Errorf("streaming case %s: %w: %s", c.id(), err, stderr.String())
			}
			var r streamResult
			if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
				return nil, fmt.Errorf("streaming case %s: read result %q: %w", c.id(), stdout.String(), err)
			}
			samples[i] = append(samples[i], r)
			fmt.Fprintf(log, "round %d  stream %-44s %8.3f s %12.0f rows/s  peak RSS %6.1f MiB\n",
				round+1, c.id(), r.Seconds, r.RowsPerSec, float64(r.PeakKiB)/1024)
		}
	}
	out := make([]streamResult, len(cases))
	for i, s := range samples {
		peak := slices.MaxFunc(s, func(a, b streamResult) int { return compareFloat(float64(a.PeakKiB), float64(b.PeakKiB)) }).PeakKiB
		slices.SortFunc(s, func(a, b streamResult) int { return compareFloat(a.Seconds, b.Seconds) })
		out[i] = s[len(s)/2]
		out[i].PeakKiB = peak
	}
	return out, nil
}
