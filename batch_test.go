package piccolo_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
			if got := names(t, e, table); !slices.Equal(got, []string{"a", "b"}) {
				t.Fatalf("rows %v: the transaction did not go on", got)
			}
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
			if got := names(t, e, table); !slices.Equal(got, []string{"outer", "after"}) {
				t.Fatalf("rows %v", got)
			}
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
