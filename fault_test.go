package piccolo_test

// Fault injection against a real PostgreSQL: each test breaks something,
// checks what the caller sees, then proves the engine still works and that
// no connection stayed borrowed. The package's TestMain checks goroutines
// at the end; tests that are not parallel also check them on their own.
// RELIABILITY.md lists the outcomes.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/pgtest"
	"go.uber.org/goleak"
)

// faultAppName returns a DSN of the package database whose connections
// carry a unique application_name, so that a test can find (and kill) its
// own backends in pg_stat_activity.
func faultAppName(t testing.TB) (dsn, app string) {
	t.Helper()
	app = fmt.Sprintf("fault_%d_%d", time.Now().UnixNano()%1e9, tableSeq.Add(1))
	dsn = pgtest.DSN(t)
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	if !strings.Contains(dsn, "://") {
		return dsn + " application_name=" + app, app
	}
	return dsn + sep + "application_name=" + app, app
}

// faultStillWorks proves the engine recovered: nothing borrowed, a query
// and a committed transaction succeed.
func faultStillWorks(t testing.TB, e *piccolo.PostgresEngine, table string) {
	t.Helper()
	assertNoBorrowed(t, e)
	ctx := context.Background()
	if got := scalar[int32](t, ctx, e, "SELECT 41 + 1"); got != 42 {
		t.Fatalf("query after the fault: %d", got)
	}
	if table != "" {
		marker := fmt.Sprintf("works-%d", tableSeq.Add(1))
		if err := e.Transaction(ctx, func(ctx context.Context) error { return insert(ctx, e, table, marker) }); err != nil {
			t.Fatalf("transaction after the fault: %v", err)
		}
		if n := scalar[int64](t, ctx, e, "SELECT count(*) FROM "+table+" WHERE name = $1", marker); n != 1 {
			t.Fatalf("row of the transaction after the fault: %d", n)
		}
	}
	assertNoBorrowed(t, e)
}

// backends counts the backends of application app (in state, if not "").
func backends(t testing.TB, watcher *piccolo.PostgresEngine, app, state string) int64 {
	t.Helper()
	return scalar[int64](t, context.Background(), watcher,
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND ($2 = '' OR state = $2)", app, state)
}

// Scenario 7: concurrent transfers under SERIALIZABLE conflict; Retry makes
// every one of them succeed, money is neither created nor lost, and no
// transfer runs more often than Retry allows.
func TestFaultSerializationFailuresUnderLoad(t *testing.T) {
	t.Parallel()
	const (
		accounts  = 4
		initial   = 1000
		workers   = 8
		transfers = 15
		attempts  = 20
	)
	e := newEngine(t, true, piccolo.PostgresConfig{MaxConns: workers})
	bg := context.Background()
	table := fmt.Sprintf(`"accounts_%d"`, tableSeq.Add(1))
	if err := e.RunDDL(bg, "CREATE TABLE "+table+" (id int PRIMARY KEY, balance int NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.RunDDL(bg, "DROP TABLE "+table) })
	if _, err := e.Exec(bg, piccolo.Querystring{SQL: "INSERT INTO " + table + " SELECT g, $1 FROM generate_series(1, $2::int) g", Args: []any{initial, accounts}}); err != nil {
		t.Fatal(err)
	}
	balance := func(ctx context.Context, id int) (int32, error) {
		rows, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT balance FROM " + table + " WHERE id = $1", Args: []any{id}})
		if err != nil {
			return 0, err
		}
		return rows[0]["balance"].(int32), nil
	}
	var total, maxRuns atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers*transfers)
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range transfers {
				from, to := 1+rng.IntN(accounts), 1+rng.IntN(accounts-1)
				if to >= from {
					to++
				}
				amount := int32(1 + rng.IntN(50))
				runs := int64(0)
				err := e.Transaction(bg, func(ctx context.Context) error {
					runs++
					total.Add(1)
					a, err := balance(ctx, from)
					if err != nil {
						return err
					}
					b, err := balance(ctx, to)
					if err != nil {
						return err
					}
					// Read-modify-write: a lost update would break the sum.
					if _, err := e.Exec(ctx, piccolo.Querystring{SQL: "UPDATE " + table + " SET balance = $2 WHERE id = $1", Args: []any{from, a - amount}}); err != nil {
						return err
					}
					_, err = e.Exec(ctx, piccolo.Querystring{SQL: "UPDATE " + table + " SET balance = $2 WHERE id = $1", Args: []any{to, b + amount}})
					return err
				}, piccolo.Isolation(piccolo.Serializable), piccolo.Retry(attempts))
				for {
					m := maxRuns.Load()
					if runs <= m || maxRuns.CompareAndSwap(m, runs) {
						break
					}
				}
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("transfer: %v", err)
		}
	}
	if sum := scalar[int64](t, bg, e, "SELECT sum(balance) FROM "+table); sum != accounts*initial {
		t.Fatalf("sum of balances %d, want %d: money was created or lost", sum, accounts*initial)
	}
	if m := maxRuns.Load(); m > attempts {
		t.Fatalf("a transfer ran %d times with Retry(%d)", m, attempts)
	}
	if n := total.Load(); n <= workers*transfers {
		t.Fatalf("%d runs for %d transfers: no conflict happened, the test proves nothing", n, workers*transfers)
	}
	t.Logf("%d transfers took %d runs, at most %d for one", workers*transfers, total.Load(), maxRuns.Load())
	faultStillWorks(t, e, "")
}

// Scenario 12: panics in transaction closures (plain, savepoint-nested,
// inside an Atomic's Runner), in scan callbacks and in batch loops give
// every connection back, commit nothing of the panicking block, and leave
// no goroutine behind. (TestTransactionPanicRollsBackAndRepanics and
// TestBatchAllClosesWhenTheLoopPanics cover the plain closure and All.)
func TestFaultPanics(t *testing.T) {
	// Not parallel: it checks goroutines itself.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{DSN: pgtest.DSN(t), MaxConns: 3})
	if err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	if err := e.StartConnectionPool(bg); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	table := newTable(t, e)
	mustPanic := func(what string, fn func()) {
		t.Helper()
		defer func() {
			if p := recover(); p != what {
				t.Errorf("%s: recovered %v, want the panic re-raised", what, p)
			}
		}()
		fn()
	}
	mustPanic("savepoint block", func() {
		_ = e.Transaction(bg, func(ctx context.Context) error {
			mustInsert(t, ctx, e, table, "outer")
			defer func() {
				// The outer block survives its savepoint block's panic.
				p := recover()
				mustInsert(t, ctx, e, table, "outer after panic")
				panic(p)
			}()
			return e.Transaction(ctx, func(ctx context.Context) error {
				mustInsert(t, ctx, e, table, "inner")
				panic("savepoint block")
			}, piccolo.Nesting(piccolo.NestSavepoint))
		})
	})
	mustPanic("scan", func() {
		_ = e.QueryFunc(bg, piccolo.Querystring{SQL: "SELECT 1"}, func(pgx.Rows) error { panic("scan") })
	})
	mustPanic("scan in transaction", func() {
		_ = e.Transaction(bg, func(ctx context.Context) error {
			mustInsert(t, ctx, e, table, "scan tx")
			return e.QueryFunc(ctx, piccolo.Querystring{SQL: "SELECT 1"}, func(pgx.Rows) error { panic("scan in transaction") })
		})
	})
	mustPanic("runner", func() {
		_ = e.Atomic().Add(piccolo.Raw("INSERT INTO "+table+" (name) VALUES ('atomic')"), panicRunner("runner")).Run(bg)
	})
	mustPanic("next loop", func() {
		b, err := e.Batch(bg, seriesQuery(100), piccolo.BatchSize(10))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close(bg)
		for {
			if _, err := b.Next(bg); err != nil {
				t.Fatal(err)
			}
			panic("next loop")
		}
	})
	mustPanic("NextFunc scan", func() {
		b, err := e.Batch(bg, seriesQuery(100), piccolo.BatchSize(10))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close(bg)
		_, _ = b.NextFunc(bg, func(pgx.Rows) error { panic("NextFunc scan") })
	})
	assertNoBorrowed(t, e)
	assertRows(t, e, table) // panicking blocks commit nothing
	faultStillWorks(t, e, table)
}

// panicRunner is an Atomic step whose logic panics.
type panicRunner string

func (p panicRunner) Querystrings() ([]piccolo.Querystring, error) { return nil, nil }

func (p panicRunner) Run(context.Context, piccolo.Engine) error { panic(string(p)) }
