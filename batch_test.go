package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/piccolo-go/piccolo"
)

func seriesQuery(n int) piccolo.Query {
	return piccolo.Raw("SELECT g AS i FROM generate_series(1, $1::int) AS g ORDER BY g", n)
}

func TestBatchSizes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rows, size int
		want       []int
	}{
		{rows: 25, size: 10, want: []int{10, 10, 5}},
		{rows: 1000, size: 10, want: slices.Repeat([]int{10}, 100)},
		{rows: 20, size: 10, want: []int{10, 10}},
		{rows: 0, size: 10, want: nil},
		{rows: 250, size: 100, want: []int{100, 100, 50}},
	} {
		e := newEngine(t, true, piccolo.PostgresConfig{})
		ctx := context.Background()
		opts := []piccolo.Option{piccolo.BatchSize(tc.size)}
		if tc.size == piccolo.DefaultBatchSize {
			opts = nil // the default
		}
		b, err := e.Batch(ctx, seriesQuery(tc.rows), opts...)
		if err != nil {
			t.Fatal(err)
		}
		var sizes []int
		next := int32(1)
		for rows, err := range b.All(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, len(rows))
			for _, r := range rows {
				if r["i"] != next {
					t.Fatalf("row %v, want i=%d: rows out of order or lost", r, next)
				}
				next++
			}
		}
		if !slices.Equal(sizes, tc.want) {
			t.Errorf("%d rows in batches of %d: got %v, want %v", tc.rows, tc.size, sizes, tc.want)
		}
		if rows, err := b.Next(ctx); err != nil || len(rows) != 0 {
			t.Errorf("Next after the end: %v %v", rows, err)
		}
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close after the end: %v", err)
		}
		assertNoBorrowed(t, e)
	}
}

func TestBatchInsideTransactionSeesUncommittedRows(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		for _, n := range []string{"a", "b", "c"} {
			mustInsert(t, ctx, e, table, n)
		}
		b, err := e.Batch(ctx, piccolo.Raw("SELECT name FROM "+table+" ORDER BY id"), piccolo.BatchSize(2))
		if err != nil {
			return err
		}
		var got []string
		for rows, err := range b.All(ctx) {
			if err != nil {
				return err
			}
			for _, r := range rows {
				got = append(got, r["name"].(string))
			}
		}
		if !slices.Equal(got, []string{"a", "b", "c"}) {
			t.Errorf("batch in the transaction saw %v", got)
		}
		// The transaction goes on after the batch.
		return insert(ctx, e, table, "d")
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(t, e, table); len(got) != 4 {
		t.Fatalf("rows %v", got)
	}
}

func TestBatchErrors(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	ctx := context.Background()
	_, err := e.Batch(ctx, piccolo.Raw("SELECT * FROM no_such_table"))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42P01" {
		t.Fatalf("bad query: %v", err)
	}
	if _, err := e.Batch(ctx, seriesQuery(1), piccolo.BatchSize(0)); err == nil {
		t.Fatal("BatchSize(0) accepted")
	}
	if _, err := e.Batch(ctx, multi{}); err == nil || !strings.Contains(err.Error(), "exactly one") {
		t.Fatalf("two statements: %v", err)
	}
	// An error while fetching (division by zero at row 15) is returned, and
	// the batch's own transaction rolls back.
	b, err := e.Batch(ctx, piccolo.Raw("SELECT 1 / (15 - g) FROM generate_series(1, 30) g"), piccolo.BatchSize(10))
	if err != nil {
		t.Fatal(err)
	}
	if rows, err := b.Next(ctx); err != nil || len(rows) != 10 {
		t.Fatalf("first batch: %v", err)
	}
	if _, err := b.Next(ctx); !errors.As(err, &pgErr) || pgErr.Code != "22012" {
		t.Fatalf("failing fetch: %v, want 22012", err)
	}
	if _, err := b.Next(ctx); !errors.Is(err, piccolo.ErrBatchClosed) {
		t.Fatalf("Next after an error: %v", err)
	}
	assertNoBorrowed(t, e)
	// Without a pool, the batch's one-shot connection is closed too.
	oneShot := newEngine(t, false, piccolo.PostgresConfig{})
	b, err = oneShot.Batch(ctx, seriesQuery(5), piccolo.BatchSize(2))
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for rows, err := range b.All(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		total += len(rows)
	}
	if total != 5 {
		t.Fatalf("one-shot batch read %d rows", total)
	}
}

type multi struct{}

func (multi) Querystrings() ([]piccolo.Querystring, error) {
	return []piccolo.Querystring{{SQL: "SELECT 1"}, {SQL: "SELECT 2"}}, nil
}

func TestBatchesShareATransaction(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		// Two cursors on one connection, read by two goroutines at once:
		// unique cursor names, and turns taken on the connection.
		var wg sync.WaitGroup
		sums := make([]int, 2)
		errs := make([]error, 2)
		for i := range 2 {
			b, err := e.Batch(ctx, seriesQuery(500*(i+1)), piccolo.BatchSize(7))
			if err != nil {
				return err
			}
			wg.Go(func() {
				for {
					n, err := b.NextFunc(ctx, func(r pgx.Rows) error {
						var v int32
						if err := r.Scan(&v); err != nil {
							return err
						}
						sums[i] += int(v)
						return nil
					})
					if err != nil || n == 0 {
						errs[i] = err
						return
					}
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		if sums[0] != 500*501/2 || sums[1] != 1000*1001/2 {
			t.Errorf("sums %v", sums)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// assertClosesCursor closes b and fails unless no batch cursor is left
// open in ctx's transaction (pg_cursors shows the session's own).
func assertClosesCursor(t testing.TB, ctx context.Context, e *piccolo.PostgresEngine, b *piccolo.Batch) {
	t.Helper()
	if err := b.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	if n := scalar[int64](t, ctx, e, "SELECT count(*) FROM pg_cursors WHERE name LIKE 'piccolo_batch_%'"); n != 0 {
		t.Errorf("%d cursors left open in the transaction", n)
	}
}

// A Batch in the caller's transaction closes its cursor on the server
// whenever it ends while the transaction is usable: by Close, after its
// scan callback failed, or after Next gave up on an ended context.
func TestBatchCloseLeavesNoCursorInCallersTransaction(t *testing.T) {
	t.Parallel()
	errScan := errors.New("scan refused the row")
	for _, tc := range []struct {
		name string
		end  func(ctx context.Context, b *piccolo.Batch) error // ends the batch; returns Next's error
		want error
	}{
		{"close mid-stream", func(ctx context.Context, b *piccolo.Batch) error {
			_, err := b.Next(ctx)
			return err
		}, nil},
		{"scan callback error", func(ctx context.Context, b *piccolo.Batch) error {
			_, err := b.NextFunc(ctx, func(pgx.Rows) error { return errScan })
			return err
		}, errScan},
		{"next with an ended context", func(ctx context.Context, b *piccolo.Batch) error {
			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			_, err := b.Next(cancelled)
			return err
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, table := pooledTable(t)
			err := e.Transaction(context.Background(), func(ctx context.Context) error {
				mustInsert(t, ctx, e, table, "a")
				b, err := e.Batch(ctx, seriesQuery(100), piccolo.BatchSize(10))
				if err != nil {
					return err
				}
				if err := tc.end(ctx, b); !errors.Is(err, tc.want) {
					t.Errorf("Next: %v, want %v", err, tc.want)
				}
				assertClosesCursor(t, ctx, e, b)
				return insert(ctx, e, table, "b")
			})
			if err != nil {
				t.Fatal(err)
			}
			assertRows(t, e, table, "a", "b") // the transaction went on
			assertNoBorrowed(t, e)
		})
	}
}

// A Batch lives as long as its cursor on the server. Opened in a
// NestSavepoint block that released, it goes on in the enclosing
// transaction (RELEASE keeps cursors); opened in a block that rolled back,
// it is gone (ROLLBACK TO closes cursors opened after the savepoint): Next
// says ErrTransactionDone and Close has nothing left to close.
func TestBatchLivesAsLongAsItsCursor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		blockErr  error // what the savepoint block returns
		wantNext  error
		wantTotal int
	}{
		{"released block", nil, nil, 100},
		{"rolled-back block", errBoom, piccolo.ErrTransactionDone, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, table := pooledTable(t)
			err := e.Transaction(context.Background(), func(ctx context.Context) error {
				mustInsert(t, ctx, e, table, "outer")
				var b *piccolo.Batch
				err := e.Transaction(ctx, func(ctx context.Context) error {
					var err error
					if b, err = e.Batch(ctx, seriesQuery(100), piccolo.BatchSize(10)); err != nil {
						return err
					}
					if rows, err := b.Next(ctx); err != nil || len(rows) != 10 {
						t.Fatalf("first batch: %d rows, %v", len(rows), err)
					}
					return tc.blockErr
				}, piccolo.Nesting(piccolo.NestSavepoint))
				if !errors.Is(err, tc.blockErr) {
					t.Fatalf("savepoint block: %v", err)
				}
				total := 10
				for {
					rows, err := b.Next(ctx)
					if !errors.Is(err, tc.wantNext) {
						t.Fatalf("Next after the block: %v, want %v", err, tc.wantNext)
					}
					total += len(rows)
					if err != nil || len(rows) == 0 {
						break
					}
				}
				if total != tc.wantTotal {
					t.Errorf("%d rows, want %d", total, tc.wantTotal)
				}
				assertClosesCursor(t, ctx, e, b)
				return insert(ctx, e, table, "after")
			})
			if err != nil {
				t.Fatal(err)
			}
			assertRows(t, e, table, "outer", "after")
		})
	}
}

// Closed early after a released savepoint block, the batch closes its
// cursor in the enclosing transaction.
func TestBatchFromReleasedSavepointBlockClosesItsCursor(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		var b *piccolo.Batch
		err := e.Transaction(ctx, func(ctx context.Context) error {
			var err error
			b, err = e.Batch(ctx, seriesQuery(100), piccolo.BatchSize(10))
			return err
		}, piccolo.Nesting(piccolo.NestSavepoint))
		if err != nil {
			return err
		}
		assertClosesCursor(t, ctx, e, b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Rule: a Batch outside a transaction reads its first batch as it opens
// (BEGIN, DECLARE and the first FETCH in one round trip); should the query
// fail while that FETCH runs, Batch succeeds and the first Next reports
// the failure exactly as when it sends the FETCH itself (as it does in a
// caller's transaction); the batch's transaction rolls back.
func TestBatchFirstFetchFailureIsTheFirstNexts(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	ctx := context.Background()
	failing := piccolo.Raw("SELECT 1 / (5 - g) AS q FROM generate_series(1, 30) g")
	first := func(ctx context.Context) string {
		b, err := e.Batch(ctx, failing, piccolo.BatchSize(10))
		if err != nil {
			t.Fatalf("Batch: %v, want the failure on the first Next", err)
		}
		seen := 0
		n, err := b.NextFunc(ctx, func(pgx.Rows) error { seen++; return nil })
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "22012" {
			t.Fatalf("first NextFunc: %v, want 22012", err)
		}
		if _, err := b.Next(ctx); !errors.Is(err, piccolo.ErrBatchClosed) {
			t.Fatalf("Next after the failure: %v", err)
		}
		return fmt.Sprintf("%d rows (scan saw %d): %s %s", n, seen, pgErr.Code, pgErr.Message)
	}
	own := first(ctx)
	var live string
	_ = e.Transaction(ctx, func(ctx context.Context) error { live = first(ctx); return nil })
	if own != live {
		t.Fatalf("first NextFunc of a batch of its own: %s\nread live: %s", own, live)
	}
	assertNoBorrowed(t, e)
}

// Rule: the first batch, sent in the pipeline that opens the batch and read
// by the first Next, reads through pgx.Rows exactly as the rows of a FETCH
// sent alone: Scan (into values, and into a RowScanner), Values, RawValues,
// NULLs, empty values and rows of no columns.
func TestBatchFirstRowsReadAsAFetchSentAlone(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	ctx := context.Background()
	const q = `SELECT g::int4 AS n, CASE WHEN g % 2 = 0 THEN NULL ELSE 'v' || g END AS s,
		'2026-01-02 03:04:05+00'::timestamptz + g * interval '1 day' AS t, ''::text AS empty,
		NULL::int8 AS nothing FROM generate_series(1, 6) g ORDER BY g`
	// read describes every row the way a caller's scan callback may read
	// it; in a transaction of the caller's, every batch is read live.
	read := func(ctx context.Context) []string {
		b, err := e.Batch(ctx, piccolo.Raw(q), piccolo.BatchSize(4))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close(ctx)
		var got []string
		scan := func(rows pgx.Rows) error {
			values, err := rows.Values()
			if err != nil {
				return err
			}
			var n int32
			var s pgtype.Text
			var at time.Time
			var empty string
			var nothing *int64
			if err := rows.Scan(&n, &s, &at, &empty, &nothing); err != nil {
				return err
			}
			m, err := pgx.RowToMap(rows)
			if err != nil {
				return err
			}
			got = append(got, fmt.Sprintf("%v %q %v|%d %v %v %q %v|%v|%s", values, rows.RawValues(), rows.FieldDescriptions()[1].Name,
				n, s, at.UTC(), empty, nothing, m, rows.CommandTag()))
			return nil
		}
		if err := nextFuncToEnd(ctx, b, scan); err != nil {
			t.Fatal(err)
		}
		return got
	}
	own := read(ctx)
	var live []string
	if err := e.Transaction(ctx, func(ctx context.Context) error { live = read(ctx); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(own) != 6 || !slices.Equal(own, live) {
		t.Fatalf("rows of a batch of its own:\n%s\nread live:\n%s", strings.Join(own, "\n"), strings.Join(live, "\n"))
	}
	// A RowScanner reads the row itself.
	b, err := e.Batch(ctx, piccolo.Raw(q), piccolo.BatchSize(10))
	if err != nil {
		t.Fatal(err)
	}
	var ns []int32
	if _, err := b.NextFunc(ctx, func(rows pgx.Rows) error {
		var r firstColumn
		err := rows.Scan(&r)
		ns = append(ns, r.n)
		return err
	}); err != nil || !slices.Equal(ns, []int32{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("RowScanner: %v, %v", ns, err)
	}
	// Rows of no columns are rows all the same.
	b, err = e.Batch(ctx, piccolo.Raw("SELECT FROM generate_series(1, 3)"))
	if err != nil {
		t.Fatal(err)
	}
	if rows, err := b.Next(ctx); err != nil || len(rows) != 3 {
		t.Fatalf("rows of no columns: %v, %v", rows, err)
	}
	assertNoBorrowed(t, e)
}

// nextFuncToEnd reads b with NextFunc until the rows run out.
func nextFuncToEnd(ctx context.Context, b *piccolo.Batch, scan func(pgx.Rows) error) error {
	for {
		n, err := b.NextFunc(ctx, scan)
		if err != nil || n == 0 {
			return err
		}
	}
}

// firstColumn is a pgx.RowScanner that keeps a row's first column.
type firstColumn struct{ n int32 }

func (f *firstColumn) ScanRow(rows pgx.Rows) error {
	return pgx.ScanRow(rows.Conn().TypeMap(), rows.FieldDescriptions()[:1], rows.RawValues()[:1], &f.n)
}

// Rule: the first batch, sent in the pipeline that opens the batch, tells
// an empty value from NULL even when no value of the batch has a
// single byte (an empty text or bytea reads as "" or []byte{}, as read live).
func TestBatchFirstRowsTellEmptyValuesFromNull(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	ctx := context.Background()
	read := func(ctx context.Context) string {
		b, err := e.Batch(ctx, piccolo.Raw("SELECT ''::text AS s, ''::bytea AS b, NULL::text AS n FROM generate_series(1, 2)"))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close(ctx)
		var got []string
		if _, err := b.NextFunc(ctx, func(rows pgx.Rows) error {
			var s, n pgtype.Text
			var by []byte
			if err := rows.Scan(&s, &by, &n); err != nil {
				return err
			}
			got = append(got, fmt.Sprintf("%v %v %v %v", s, by == nil, n, rows.RawValues()[0] == nil))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return strings.Join(got, "; ")
	}
	own := read(ctx)
	var live string
	if err := e.Transaction(ctx, func(ctx context.Context) error { live = read(ctx); return nil }); err != nil {
		t.Fatal(err)
	}
	if own != live {
		t.Fatalf("rows of a batch of its own: %s\nread live: %s", own, live)
	}
}

// Rule: a Batch whose query's cached description went stale (a column
// added to the table since) may fail once, but the failure forgets the
// description: the next Batch of the query describes it again and reads
// its rows, as pgx's statement cache recovers.
func TestBatchStaleDescriptionFailsOnlyOnce(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	mustInsert(t, context.Background(), e, table, "a")
	rows, err := readAfterStale(t, e, piccolo.Raw("SELECT * FROM "+table),
		"ALTER TABLE "+table+" ADD COLUMN extra int8 DEFAULT 7, ADD COLUMN more text DEFAULT 'x'")
	if err != nil || len(rows) != 1 || rows[0]["extra"] != int64(7) {
		t.Fatalf("Batch after a failure on a stale description: %v, %v", rows, err)
	}
	assertNoBorrowed(t, e)
}

// readAfterStale reads the first rows of a Batch of q, changes the schema
// with alter, lets one Batch of q fail on the description it cached (it
// may), and returns what the Batch after it reads.
func readAfterStale(t *testing.T, e *piccolo.PostgresEngine, q piccolo.Query, alter string) ([]map[string]any, error) {
	t.Helper()
	ctx := context.Background()
	read := func() ([]map[string]any, error) {
		b, err := e.Batch(ctx, q)
		if err != nil {
			return nil, err
		}
		defer b.Close(ctx)
		return b.Next(ctx)
	}
	if _, err := read(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Exec(ctx, piccolo.Raw(alter)); err != nil {
		t.Fatal(err)
	}
	_, _ = read() // may fail: the description it rode on was stale
	return read()
}

// Rule: every Next of a Batch hands its scan callback rows that know their
// connection (rows.Conn, which a pgx.RowScanner may use for its types), as
// the first Next does and as a batch in the caller's transaction does, not
// only the batch's first rows.
func TestBatchRowsKnowTheirConnectionOnEveryNext(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	ctx := context.Background()
	// The first FETCH rides with DECLARE; Next sends the others.
	for _, size := range []int{2, 1001} {
		b, err := e.Batch(ctx, seriesQuery(3*size), piccolo.BatchSize(size))
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		err = nextFuncToEnd(ctx, b, func(rows pgx.Rows) error {
			if rows.Conn() == nil {
				return fmt.Errorf("row %d: rows.Conn() is nil", seen+1)
			}
			var r firstColumn
			seen++
			return rows.Scan(&r)
		})
		if err != nil {
			t.Fatalf("batches of %d: %v", size, err)
		}
		if seen != 3*size {
			t.Fatalf("batches of %d read %d rows", size, seen)
		}
	}
	assertNoBorrowed(t, e)
}

// Rule: a Batch closed before its first Next closes as it would had its
// first FETCH waited for that Next: without an error, even when that
// FETCH, run as the batch opened, failed (the rows were never asked for;
// its transaction rolls back, and the connection goes back).
func TestBatchClosedUnreadIgnoresItsFirstFetchFailure(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	ctx := context.Background()
	b, err := e.Batch(ctx, piccolo.Raw("SELECT 1 / (5 - g) AS q FROM generate_series(1, 30) g"), piccolo.BatchSize(10))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close before the first Next: %v", err)
	}
	if _, err := b.Next(ctx); !errors.Is(err, piccolo.ErrBatchClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	assertNoBorrowed(t, e)
}

// Rule: a Batch whose DECLARE fails because its query's cached
// description went stale (a parameter's type changed under it) fails at
// most once: the failure forgets the query's description (cached under
// the query, not under the DECLARE), and the next Batch describes it again.
func TestBatchStaleParameterTypesFailOnlyOnce(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	mustInsert(t, context.Background(), e, table, "a")
	// A string argument is sent as text, whatever its parameter's type.
	rows, err := readAfterStale(t, e, piccolo.Raw("SELECT name FROM "+table+" WHERE id = $1", "1"),
		"ALTER TABLE "+table+" ALTER COLUMN id TYPE text")
	if err != nil || len(rows) != 1 || rows[0]["name"] != "a" {
		t.Fatalf("Batch after a failure on a stale description: %v, %v", rows, err)
	}
	assertNoBorrowed(t, e)
}
