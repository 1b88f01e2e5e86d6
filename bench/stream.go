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

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	"github.com/piccolo-go/piccolo"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// streamSelect reads every row of the streaming table.
const streamSelect = "SELECT " + itemColumns + " FROM stream_items"

// streamCase reads the whole streaming table in a process of its own, so
// that its peak RSS is its own.
type streamCase struct {
	name     string
	batch    int    // rows per round trip; 0 for a plain query
	baseline string // the id of the case its ratio divides by; "" if it is one
	run      func(ctx context.Context, dsn string, batch int) (rows int64, err error)
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
		{name: streamPgxPlain, run: streamPgx},
		{name: "piccolo-go QueryFunc (typed)", baseline: streamPgxPlain, run: streamPiccoloQueryFunc},
		{name: peerSQL + " rows", baseline: streamPgxPlain, run: streamSQL},
		{name: peerSqlx + " StructScan", baseline: streamPgxPlain, run: streamSqlx},
		{name: peerGorm + " Rows + ScanRows", baseline: streamPgxPlain, run: streamGormRows},
		{name: peerBun + " rows + ScanRow", baseline: streamPgxPlain, run: streamBun},
	}
	for _, n := range []int{100, 1000, 10000} {
		typed := streamCase{name: streamPgxCursor, batch: n, run: streamPgxCursorLoop(scanTyped)}
		maps := streamCase{name: streamPgxCursorMaps, batch: n, run: streamPgxCursorLoop(scanMap)}
		cases = append(cases, typed,
			streamCase{name: "piccolo-go Batch NextFunc (typed)", batch: n, baseline: typed.id(), run: streamPiccoloBatchTyped},
			maps,
			streamCase{name: "piccolo-go Batch Next (maps)", batch: n, baseline: maps.id(), run: streamPiccoloBatchMaps},
			streamCase{name: peerGorm + " FindInBatches", batch: n, baseline: typed.id(), run: streamGormBatches},
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

// The streaming cases. Each connects on its own, records its RSS once
// connected, reads every row into an Item (or a map) and returns the count.

func streamPgx(ctx context.Context, dsn string, _ int) (int64, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := connected(); err != nil {
		return 0, err
	}
	rows, err := conn.Query(ctx, streamSelect)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var it Item
	return countRows(rows, func() error { return scanItem(rows, &it) })
}

// scanTyped reads a row into an Item; scanMap into a map, as Batch.Next
// does.
func scanTyped(rows pgx.Rows) error {
	var it Item
	return scanItem(rows, &it)
}

func scanMap(rows pgx.Rows) error {
	_, err := pgx.RowToMap(rows)
	return err
}

// streamPgxCursorLoop returns the hand-written peer of piccolo-go's Batch: a
// transaction, a cursor, FETCH until a short batch, each row read by scan.
func streamPgxCursorLoop(scan func(pgx.Rows) error) func(context.Context, string, int) (int64, error) {
	return func(ctx context.Context, dsn string, batch int) (int64, error) {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return 0, err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		if err := connected(); err != nil {
			return 0, err
		}
		var n int64
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "DECLARE c NO SCROLL CURSOR FOR "+streamSelect); err != nil {
				return err
			}
			fetch := "FETCH FORWARD " + strconv.Itoa(batch) + " FROM c"
			for {
				rows, err := tx.Query(ctx, fetch)
				if err != nil {
					return err
				}
				got := 0
				for rows.Next() {
					if err := scan(rows); err != nil {
						rows.Close()
						return err
					}
					got++
				}
				if err := rows.Err(); err != nil {
					return err
				}
				n += int64(got)
				if got < batch {
					return nil
				}
			}
		})
		return n, err
	}
}

// piccoloEngine starts an engine on dsn for a streaming case.
func piccoloEngine(ctx context.Context, dsn string) (*piccolo.PostgresEngine, error) {
	e, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{DSN: dsn})
	if err != nil {
		return nil, err
	}
	if err := e.StartConnectionPool(ctx); err != nil {
		return nil, err
	}
	return e, connected()
}

func streamPiccoloQueryFunc(ctx context.Context, dsn string, _ int) (int64, error) {
	e, err := piccoloEngine(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer e.Close()
	var n int64
	var it Item
	err = e.QueryFunc(ctx, piccolo.Querystring{SQL: streamSelect}, func(r pgx.Rows) error {
		n++
		return scanItem(r, &it)
	})
	return n, err
}

func streamPiccoloBatchTyped(ctx context.Context, dsn string, batch int) (int64, error) {
	e, err := piccoloEngine(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer e.Close()
	b, err := e.Batch(ctx, piccolo.Raw(streamSelect), piccolo.BatchSize(batch))
	if err != nil {
		return 0, err
	}
	defer b.Close(ctx) //nolint:errcheck // closed by the last NextFunc; this covers errors
	var n int64
	var it Item
	for {
		got, err := b.NextFunc(ctx, func(r pgx.Rows) error { return scanItem(r, &it) })
		if err != nil {
			return n, err
		}
		if got == 0 {
			return n, nil
		}
		n += int64(got)
	}
}

func streamPiccoloBatchMaps(ctx context.Context, dsn string, batch int) (int64, error) {
	e, err := piccoloEngine(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer e.Close()
	b, err := e.Batch(ctx, piccolo.Raw(streamSelect), piccolo.BatchSize(batch))
	if err != nil {
		return 0, err
	}
	var n int64
	for rows, err := range b.All(ctx) {
		if err != nil {
			return n, err
		}
		n += int64(len(rows))
	}
	return n, nil
}

// openStdlib opens database/sql on pgx for a streaming case.
func openStdlib(ctx context.Context, dsn string) (*sqlx.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	db := sqlx.NewDb(stdlib.OpenDB(*cfg), "pgx")
	if err := db.PingContext(ctx); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return db, connected()
}

func streamSQL(ctx context.Context, dsn string, _ int) (int64, error) {
	db, err := openStdlib(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	rows, err := db.DB.QueryContext(ctx, streamSelect)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var it Item
	return countRows(rows, func() error { return scanItem(rows, &it) })
}

func streamSqlx(ctx context.Context, dsn string, _ int) (int64, error) {
	db, err := openStdlib(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	rows, err := db.QueryxContext(ctx, streamSelect)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var it Item
	return countRows(rows, func() error { return rows.StructScan(&it) })
}

// openGorm opens GORM (prepared statements off) for a streaming case.
func openGorm(ctx context.Context, dsn string) (*gorm.DB, func() error, error) {
	db, err := openStdlib(ctx, dsn)
	if err != nil {
		return nil, nil, err
	}
	g, err := gorm.Open(postgres.New(postgres.Config{Conn: db.DB}), &gorm.Config{
		SkipDefaultTransaction: true, Logger: logger.Discard,
	})
	if err != nil {
		return nil, nil, errors.Join(err, db.Close())
	}
	return g.WithContext(ctx), db.Close, nil
}

func streamGormRows(ctx context.Context, dsn string, _ int) (int64, error) {
	g, closeDB, err := openGorm(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer closeDB() //nolint:errcheck // nothing to do about it at exit
	rows, err := g.Table("stream_items").Rows()
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var it Item
	return countRows(rows, func() error { return g.ScanRows(rows, &it) })
}

func streamGormBatches(ctx context.Context, dsn string, batch int) (int64, error) {
	g, closeDB, err := openGorm(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer closeDB() //nolint:errcheck // nothing to do about it at exit
	var n int64
	var page []Item
	err = g.Table("stream_items").FindInBatches(&page, batch, func(*gorm.DB, int) error {
		n += int64(len(page))
		return nil
	}).Error
	return n, err
}

func streamBun(ctx context.Context, dsn string, _ int) (int64, error) {
	db, err := openStdlib(ctx, dsn)
	if err != nil {
		return 0, err
	}
	b := bun.NewDB(db.DB, pgdialect.New())
	defer b.Close()
	rows, err := b.QueryContext(ctx, streamSelect)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var n int64
	var it bunItem
	for rows.Next() {
		if err := b.ScanRow(ctx, rows, &it); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}

// countRows reads every row with scan, which scans the current row, and
// counts them: the loop each streaming peer runs over its own rows type.
func countRows(rows interface {
	Next() bool
	Err() error
}, scan func() error) (int64, error) {
	var n int64
	for rows.Next() {
		if err := scan(); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}
