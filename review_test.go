package piccolo_test

// Review tests: each pins a rule of DESIGN section 3 or a bug found in
// review. Tests marked `// Fixed (was a bug):` fail on the current tree (65fa64a); the
// comment says why. `// FIXED in 65fa64a` tests failed on 90610e0 and now
// pin the fix.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
)

// FIXED in 65fa64a (failed on 90610e0): a SAVEPOINT queued in txConn.pending is dropped (never sent) when
// the statement it travels with fails before execution (prepare error in a
// pgx batch, a syntax error that rejects the whole simple-protocol string, a
// client-side encoding error): noteSentLocked clears pending because the
// transaction had already begun. The savepoint then does not exist, so
// RollbackTo fails with 3B001 and the transaction cannot be recovered.
func TestReviewSavepointSurvivesFailedFirstStatement(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		q    piccolo.Querystring
	}{
		{"prepare error (batch path)", piccolo.Querystring{SQL: "INSERT INTO review_no_such_table VALUES ($1)", Args: []any{1}}},
		{"prepare error in a read", piccolo.Querystring{SQL: "SELECT * FROM review_no_such_table"}},
		{"syntax error (simple protocol)", piccolo.Querystring{SQL: "INSERT INTO review_no_such_table VALUE (1)"}},
		{"client-side encode error", piccolo.Querystring{SQL: "SELECT $1::int", Args: []any{make(chan int)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, true, piccolo.PostgresConfig{})
			table := newTable(t, e)
			ctx, tx, err := e.Begin(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			mustInsert(t, ctx, e, table, "before")
			sp, err := tx.Savepoint(ctx, "try")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.RunQuerystring(ctx, tc.q); err == nil {
				t.Fatal("the failing statement succeeded")
			}
			if err := sp.RollbackTo(ctx); err != nil {
				t.Fatalf("RollbackTo after the first statement in the savepoint failed: %v", err)
			}
			mustInsert(t, ctx, e, table, "after")
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if got := names(t, e, table); !slices.Equal(got, []string{"before", "after"}) {
				t.Fatalf("rows %v", got)
			}
		})
	}
}

// FIXED in 65fa64a (failed on 90610e0): same root cause through NestSavepoint. The inner block's first
// statement fails before execution, the block's SAVEPOINT was never sent,
// so its ROLLBACK TO SAVEPOINT fails and aborts the OUTER transaction: the
// outer work is lost although a savepoint block must roll back only itself.
func TestReviewNestSavepointFirstStatementFails(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	table := newTable(t, e)
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		mustInsert(t, ctx, e, table, "outer")
		inner := e.Transaction(ctx, func(ctx context.Context) error {
			_, err := e.Exec(ctx, piccolo.Querystring{SQL: "INSERT INTO review_no_such_table VALUES ($1)", Args: []any{1}})
			return err
		}, piccolo.Nesting(piccolo.NestSavepoint))
		var pgErr *pgconn.PgError
		if !errors.As(inner, &pgErr) || pgErr.Code != "42P01" {
			t.Errorf("inner block: %v, want 42P01", inner)
		}
		if strings.Contains(fmt.Sprint(inner), "3B001") {
			t.Errorf("inner block's rollback failed: %v", inner)
		}
		return insert(ctx, e, table, "outer again")
	})
	if err != nil {
		t.Fatalf("outer transaction: %v", err)
	}
	if got := names(t, e, table); !slices.Equal(got, []string{"outer", "outer again"}) {
		t.Fatalf("rows %v", got)
	}
	assertNoBorrowed(t, e)
}

// FIXED in 65fa64a (failed on 90610e0, consistency of the lazy BEGIN): a server error swallowed inside a
// transaction makes COMMIT return ErrCommitRolledBack, except when the
// failing statement is the first one: its prepare error comes back before
// the queued BEGIN ran, the transaction is not aborted, and COMMIT succeeds.
func TestReviewSwallowedErrPos(t *testing.T) {
	t.Parallel()
	for _, first := range []bool{false, true} {
		t.Run(map[bool]string{false: "later", true: "first"}[first], func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, true, piccolo.PostgresConfig{})
			table := newTable(t, e)
			err := e.Transaction(context.Background(), func(ctx context.Context) error {
				if !first {
					mustInsert(t, ctx, e, table, "a")
				}
				_, _ = e.Exec(ctx, piccolo.Querystring{SQL: "INSERT INTO review_no_such_table VALUES ($1)", Args: []any{1}}) // swallowed
				if first {
					_ = insert(ctx, e, table, "a")
				}
				return nil
			})
			if !errors.Is(err, piccolo.ErrCommitRolledBack) {
				t.Fatalf("commit after a swallowed server error: %v, want ErrCommitRolledBack", err)
			}
			if got := names(t, e, table); len(got) != 0 {
				t.Fatalf("rows %v committed", got)
			}
		})
	}
}

// FIXED in 65fa64a (failed on 90610e0): the first statement of a transaction travels in one pgx.Batch with
// the queued BEGIN. When pgx cannot encode its arguments (here 70000 for an
// int2, a client-side error), pgx has already queued BEGIN unsynced in the
// pipeline and closes the connection (pgx conn.go sendBatchExtendedWithDescription
// "build" error -> Pipeline.Close -> asyncClose). Outside a transaction, or
// as a later statement, the same error leaves the connection usable.
func TestReviewEncodeErrorInFirstStatementKeepsConnection(t *testing.T) {
	t.Parallel()
	for _, first := range []bool{false, true} {
		t.Run(fmt.Sprintf("first=%v", first), func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, true, piccolo.PostgresConfig{})
			table := newTable(t, e)
			err := e.Transaction(context.Background(), func(ctx context.Context) error {
				if !first {
					mustInsert(t, ctx, e, table, "a")
				}
				if _, err := e.Exec(ctx, piccolo.Querystring{SQL: "SELECT $1::int2", Args: []any{70000}}); err == nil {
					t.Error("70000 encoded as int2")
				}
				// A client-side error: nothing reached the server, go on.
				if first {
					return insert(ctx, e, table, "a")
				}
				return nil
			})
			if err != nil {
				t.Fatalf("transaction after a client-side encode error: %v", err)
			}
			if got := names(t, e, table); !slices.Equal(got, []string{"a"}) {
				t.Fatalf("rows %v", got)
			}
			assertNoBorrowed(t, e)
		})
	}
}

// FIXED in 65fa64a (failed on 90610e0): OnCommit hooks receive the ctx given to Commit. With Begin (and
// with a manual Commit inside a closure) that ctx still carries the finished
// transaction, so any query the hook runs with it fails with
// ErrTransactionDone: a hook cannot write an outbox row or start a new
// transaction with the ctx it is handed.
func TestReviewOnCommitHookCanRunQueries(t *testing.T) {
	t.Parallel()
	for _, form := range []string{"begin", "manual commit in closure", "closure"} {
		t.Run(form, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, true, piccolo.PostgresConfig{})
			table := newTable(t, e)
			hookErr := errors.New("hook did not run")
			hook := func(ctx context.Context) {
				hookErr = e.Transaction(ctx, func(ctx context.Context) error {
					return insert(ctx, e, table, "from hook")
				})
			}
			switch form {
			case "begin":
				ctx, tx, err := e.Begin(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				tx.OnCommit(hook)
				mustInsert(t, ctx, e, table, "a")
				if err := tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}
			default:
				err := e.Transaction(context.Background(), func(ctx context.Context) error {
					e.CurrentTransaction(ctx).OnCommit(hook)
					mustInsert(t, ctx, e, table, "a")
					if form == "manual commit in closure" {
						return e.CurrentTransaction(ctx).Commit(ctx)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			if hookErr != nil {
				t.Fatalf("query in OnCommit hook: %v", hookErr)
			}
			if got := names(t, e, table); !slices.Equal(got, []string{"a", "from hook"}) {
				t.Fatalf("rows %v", got)
			}
		})
	}
}

// FIXED in 65fa64a (failed on 90610e0): generated savepoint names (savepoint_N, also used for NestSavepoint
// blocks) can equal a name the caller chose. PostgreSQL resolves a name to
// the newest savepoint, so a handle rolls back to the wrong point: here the
// caller's "savepoint_1" is shadowed by the generated one and RollbackTo
// keeps row b.
func TestReviewGeneratedSavepointNamesDoNotCollide(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	table := newTable(t, e)
	ctx, tx, err := e.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	mustInsert(t, ctx, e, table, "a")
	mine, err := tx.Savepoint(ctx, "savepoint_1")
	if err != nil {
		t.Fatal(err)
	}
	mustInsert(t, ctx, e, table, "b")
	generated, err := tx.Savepoint(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	mustInsert(t, ctx, e, table, "c")
	if err := mine.RollbackTo(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := names(t, e, table); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("rows %v, want [a]: RollbackTo(%q) went to the generated %q", got, mine.Name(), generated.Name())
	}
}

// FIXED in 65fa64a (failed on 90610e0): same collision through NestSavepoint: a rolled-back savepoint
// block keeps part of its work when the closure made a savepoint whose name
// equals the block's generated one. ROLLBACK TO SAVEPOINT "savepoint_1"
// goes to the newest (the caller's), so row "inner" is committed although
// its block rolled back.
func TestReviewRolledBackSavepointBlockKeepsNothing(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	table := newTable(t, e)
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		mustInsert(t, ctx, e, table, "outer")
		inner := e.Transaction(ctx, func(ctx context.Context) error {
			mustInsert(t, ctx, e, table, "inner")
			if _, err := e.CurrentTransaction(ctx).Savepoint(ctx, "savepoint_1"); err != nil {
				return err
			}
			mustInsert(t, ctx, e, table, "inner 2")
			return errBoom
		}, piccolo.Nesting(piccolo.NestSavepoint))
		if !errors.Is(inner, errBoom) {
			t.Errorf("inner: %v", inner)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(t, e, table); !slices.Equal(got, []string{"outer"}) {
		t.Fatalf("rows %v, want [outer]: a rolled-back savepoint block left rows behind", got)
	}
}

// FIXED in 65fa64a (failed on 90610e0): goroutines sharing a transaction wait for its connection on a
// sync.Mutex (txConn.mu) that ignores their context: a caller with a 100ms
// deadline waits for the other goroutine's whole statement. The same lock
// makes a query run from inside a QueryFunc/NextFunc scan callback with the
// transaction's ctx deadlock forever (not tested: it cannot be unblocked).
func TestReviewWaitingForTransactionConnHonoursContext(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		var wg sync.WaitGroup
		wg.Go(func() {
			_, _ = e.Exec(ctx, piccolo.Querystring{SQL: "SELECT pg_sleep(1.5)"})
		})
		time.Sleep(300 * time.Millisecond) // the sleeper holds the connection
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := e.Exec(short, piccolo.Querystring{SQL: "SELECT 1"})
		waited := time.Since(start)
		wg.Wait()
		if !errors.Is(err, context.DeadlineExceeded) || waited > 700*time.Millisecond {
			t.Errorf("waited %v for the connection with a 100ms deadline (err %v)", waited, err)
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Logf("transaction: %v", err)
	}
	assertNoBorrowed(t, e)
}

// FIXED in 65fa64a (failed on 90610e0): Batch.All does not close the batch when the loop body panics (no
// defer in the iterator). With the panic recovered higher up (an HTTP
// middleware), the batch's own transaction keeps its pooled connection
// forever.
func TestReviewBatchAllClosesOnPanic(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	b, err := e.Batch(context.Background(), seriesQuery(100), piccolo.BatchSize(10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) }) // runs before e.Close
	func() {
		defer func() { _ = recover() }()
		for range b.All(context.Background()) {
			panic("loop body")
		}
	}()
	assertNoBorrowed(t, e)
}

// Passes: runtime.Goexit (t.FailNow in a helper) inside the closure rolls
// back and releases the connection.
func TestReviewGoexitInClosureRollsBack(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	table := newTable(t, e)
	var rolledBack atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.Transaction(context.Background(), func(ctx context.Context) error {
			e.CurrentTransaction(ctx).OnRollback(func(context.Context) { rolledBack.Store(true) })
			if err := insert(ctx, e, table, "a"); err != nil {
				return err
			}
			runtime.Goexit()
			return nil
		})
	}()
	<-done
	if got := names(t, e, table); len(got) != 0 || !rolledBack.Load() {
		t.Fatalf("after Goexit: rows %v, rollback hook ran %v", got, rolledBack.Load())
	}
	assertNoBorrowed(t, e)
}

type reviewJSON struct {
	A int `json:"a"`
}

// FIXED in 65fa64a (failed on 90610e0): Atomic's pipeline encodes arguments like pgx's QueryExecModeExec
// (atomic.go pipeline: eqb.Build with a nil statement description, text
// format, no parameter OIDs), while Exec/RunQuerystring use pgx's default
// cached-statement mode that knows each parameter's type. The same Raw query
// then stores different data or fails depending on whether it runs alone or
// in an Atomic.
func TestReviewAtomicEncodesArgumentsLikeExec(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	ctx := context.Background()
	table := fmt.Sprintf(`"review_atomic_args_%d"`, tableSeq.Add(1))
	if err := e.RunDDL(ctx, "CREATE TABLE "+table+` (k text PRIMARY KEY, t text, ts timestamp, tstz timestamptz, j jsonb, a int8[], b bytea, s int2, u uuid)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.RunDDL(context.Background(), "DROP TABLE "+table) })
	plus2 := time.FixedZone("plus2", 2*3600)
	for _, tc := range []struct {
		name, col string
		arg       any
	}{
		{"[]byte into text", "t", []byte("hello")},
		{"time.Time (+02:00) into timestamp", "ts", time.Date(2024, 5, 6, 7, 8, 9, 0, plus2)},
		{"time.Time into timestamptz", "tstz", time.Date(2024, 5, 6, 7, 8, 9, 0, plus2)},
		{"struct into jsonb", "j", reviewJSON{A: 1}},
		{"map[string]string into jsonb", "j", map[string]string{"a": "b"}},
		{"map[string]any into jsonb", "j", map[string]any{"a": 1.0}},
		{"[]byte JSON into jsonb", "j", []byte(`{"a": 1}`)},
		{"string into jsonb", "j", `{"a": 1}`},
		{"[]int64 into int8[]", "a", []int64{1, 2, 3}},
		{"[]byte into bytea", "b", []byte{0, 1, 255}},
		{"nil into text", "t", nil},
		{"int into int2", "s", 7},
		{"[16]byte into uuid", "u", [16]byte{1, 2, 3}},
	} {
		insertSQL := "INSERT INTO " + table + " (k, " + tc.col + ") VALUES ($1, $2)"
		read := func(key string) string {
			rows, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT " + tc.col + "::text AS v FROM " + table + " WHERE k = $1", Args: []any{key}})
			if err != nil || len(rows) != 1 {
				return fmt.Sprintf("<read: %v %v>", rows, err)
			}
			return fmt.Sprint(rows[0]["v"])
		}
		_, execErr := e.Exec(ctx, piccolo.Querystring{SQL: insertSQL, Args: []any{tc.name + " exec", tc.arg}})
		atomicErr := e.Atomic().Add(piccolo.Raw(insertSQL, tc.name+" atomic", tc.arg)).Run(ctx)
		if (execErr == nil) != (atomicErr == nil) {
			t.Errorf("%s: Exec err %v, Atomic err %v", tc.name, execErr, atomicErr)
			continue
		}
		if execErr != nil {
			continue
		}
		if got, want := read(tc.name+" atomic"), read(tc.name+" exec"); got != want {
			t.Errorf("%s: Atomic stored %q, Exec stored %q", tc.name, got, want)
		}
	}
}

// Context cancelled mid-statement inside a transaction: pgx closes the
// connection. The transaction must not report success, nothing is
// committed, the connection goes back (destroyed) and the pool still works.
// FIXED in 65fa64a (failed on 90610e0, for "first statement, swallowed"): the lazy BEGIN never saw a
// ReadyForQuery, so begun is false and Commit reports success (Committed()
// true) for a transaction whose only statement died with its connection.
func TestReviewCancelMidStatementInTransaction(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		first, swallow bool
	}{
		{"later statement, error returned", false, false},
		{"later statement, swallowed", false, true},
		{"first statement, error returned", true, false},
		{"first statement, swallowed", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, true, piccolo.PostgresConfig{})
			table := newTable(t, e)
			var tx *piccolo.PostgresTransaction
			err := e.Transaction(context.Background(), func(ctx context.Context) error {
				tx = e.CurrentTransaction(ctx)
				if !tc.first {
					mustInsert(t, ctx, e, table, "a")
				}
				short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				defer cancel()
				_, err := e.Exec(short, piccolo.Querystring{SQL: "INSERT INTO " + table + " (name) SELECT 'slow' FROM pg_sleep(2)"})
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("cancelled statement: %v", err)
				}
				if tc.swallow {
					return nil
				}
				return err
			})
			if err == nil || tx.Committed() {
				t.Fatalf("transaction whose statement was cancelled mid-flight: err %v, Committed %v", err, tx.Committed())
			}
			if !tc.swallow && !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("the closure's error was replaced: %v", err)
			}
			if got := names(t, e, table); len(got) != 0 {
				t.Fatalf("rows %v", got)
			}
			assertNoBorrowed(t, e)
			mustInsert(t, context.Background(), e, table, "pool works")
		})
	}
}

// Passes: a Batch reading inside a transaction while another goroutine
// commits it: no deadlock, the reader gets an error, nothing leaks.
func TestReviewBatchWhileAnotherGoroutineCommits(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	ctx, tx, err := e.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Batch(ctx, seriesQuery(100000), piccolo.BatchSize(10))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	readErr := make(chan error, 1)
	go func() {
		var once sync.Once
		for {
			n, err := b.NextFunc(ctx, func(pgx.Rows) error { return nil })
			once.Do(func() { close(started) })
			if err != nil || n == 0 {
				readErr <- err
				return
			}
		}
	}()
	<-started
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-readErr:
		if !errors.Is(err, piccolo.ErrTransactionDone) && !errors.Is(err, piccolo.ErrBatchClosed) {
			t.Fatalf("reader after commit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reader deadlocked")
	}
	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close after the transaction ended: %v", err)
	}
	assertNoBorrowed(t, e)
}

// Atomic: the failing statement's index is mapped back through queries that
// render several statements and past statements that return rows; the
// pipeline stops at the failure. Passes.
func TestReviewAtomicErrorIndexMidPipeline(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	table := newTable(t, e)
	ctx := context.Background()
	ins := func(name string) piccolo.Query {
		return piccolo.Raw("INSERT INTO "+table+" (name) VALUES ($1) RETURNING id", name)
	}
	err := e.Atomic().Add(
		ins("a"),
		piccolo.Raw("SELECT g FROM generate_series(1, 50) g"),
		multi{}, // two statements: index 2
		ins("b"),
		piccolo.Raw("SELECT 1/0"), // index 4
		ins("c"),
	).Run(ctx)
	var ae *piccolo.AtomicError
	var pgErr *pgconn.PgError
	if !errors.As(err, &ae) || ae.Index != 4 || !errors.As(err, &pgErr) || pgErr.Code != "22012" {
		t.Fatalf("Run: %v, want AtomicError{Index: 4} wrapping 22012", err)
	}
	if got := names(t, e, table); len(got) != 0 {
		t.Fatalf("rows %v", got)
	}
	assertNoBorrowed(t, e)
}

// FIXED in 65fa64a (failed on 90610e0): RunDDL accepts several statements in one string (DESIGN: "Without
// arguments it may hold several statements"), but the same Raw DDL in an
// Atomic fails with 42601 "cannot insert multiple commands into a prepared
// statement": the pipeline sends every statement with the extended protocol.
func TestReviewAtomicAcceptsMultiStatementDDL(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	ctx := context.Background()
	name := fmt.Sprintf("review_multi_%d", tableSeq.Add(1))
	ddl := "CREATE TABLE " + name + " (id int); CREATE INDEX ON " + name + " (id)"
	t.Cleanup(func() { _ = e.RunDDL(context.Background(), "DROP TABLE IF EXISTS "+name) })
	if err := e.Atomic().Add(piccolo.Raw(ddl)).Run(ctx); err != nil {
		t.Fatalf("multi-statement DDL in an Atomic: %v", err)
	}
}

// Passes: Retry never re-runs after an ambiguous commit (connection killed
// before COMMIT is answered).
func TestReviewRetryNeverAfterDeadCommit(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	killer := newEngine(t, false, piccolo.PostgresConfig{})
	table := newTable(t, e)
	calls := 0
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		calls++
		mustInsert(t, ctx, e, table, fmt.Sprint(calls))
		pid := scalar[int32](t, ctx, e, "SELECT pg_backend_pid()")
		scalar[bool](t, context.Background(), killer, "SELECT pg_terminate_backend($1)", pid)
		return nil
	}, piccolo.Retry(3), piccolo.Isolation(piccolo.Serializable))
	if err == nil || calls != 1 || piccolo.IsRetryable(err) {
		t.Fatalf("commit on a killed connection: %v after %d calls", err, calls)
	}
	assertNoBorrowed(t, e)
}

// Passes: cleanup statements and savepoint block statements are logged.
func TestReviewLogCoversRollbacks(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	e := newEngine(t, true, piccolo.PostgresConfig{LogQueries: true, Logger: logger})
	table := newTable(t, e)
	_ = e.Transaction(context.Background(), func(ctx context.Context) error {
		mustInsert(t, ctx, e, table, "a")
		_ = e.Transaction(ctx, func(ctx context.Context) error {
			mustInsert(t, ctx, e, table, "b")
			return errBoom
		}, piccolo.Nesting(piccolo.NestSavepoint))
		return errBoom
	})
	for _, want := range []string{"BEGIN", "SAVEPOINT", "ROLLBACK TO SAVEPOINT", "sql=ROLLBACK"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log has no %q:\n%s", want, logs)
		}
	}
}

// Passes: cursors on one connection get unique names, so a second batch
// with different column types does not meet a stale cached description.
func TestReviewBatchCursorNamesUniqueOnOneConnection(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{MaxConns: 1})
	ctx := context.Background()
	for i, q := range []piccolo.Query{
		piccolo.Raw("SELECT g::int AS x FROM generate_series(1, 3) g"),
		piccolo.Raw("SELECT 'v' || g AS x FROM generate_series(1, 3) g"),
		piccolo.Raw("SELECT g::float8 AS x FROM generate_series(1, 3) g"),
	} {
		b, err := e.Batch(ctx, q, piccolo.BatchSize(2))
		if err != nil {
			t.Fatal(err)
		}
		var got []any
		for rows, err := range b.All(ctx) {
			if err != nil {
				t.Fatalf("batch %d: %v", i, err)
			}
			for _, r := range rows {
				got = append(got, r["x"])
			}
		}
		if len(got) != 3 || fmt.Sprintf("%T", got[0]) != []string{"int32", "string", "float64"}[i] {
			t.Fatalf("batch %d read %v", i, got)
		}
	}
	assertNoBorrowed(t, e)
}

// FIXED in 65fa64a (failed on 90610e0): LogResponses logs rows only for RunQuerystring and Batch.Next
// (logRows). QueryFunc and Batch.NextFunc, which the query layer uses for
// every Select (query/exec.go), never log the rows they return.
func TestReviewLogResponsesCoversQueryFunc(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	e := newEngine(t, true, piccolo.PostgresConfig{LogResponses: true, Logger: logger})
	err := e.QueryFunc(context.Background(), piccolo.Querystring{SQL: "SELECT 'queryfunc-response' AS greeting"}, func(rows pgx.Rows) error {
		var s string
		return rows.Scan(&s)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "queryfunc-response") {
		t.Fatalf("rows of QueryFunc not logged with LogResponses:\n%s", logs)
	}
}

// FIXED in 65fa64a (failed on 90610e0): when ROLLBACK TO SAVEPOINT fails (here the connection died inside
// the block), endSavepointLocked returns no hooks and does not move the
// block's hooks to its parent, so an OnRollback hook registered in the
// savepoint block never runs although the whole transaction rolled back.
func TestReviewSavepointBlockRollbackHookRunsWhenConnectionDies(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	killer := newEngine(t, false, piccolo.PostgresConfig{})
	table := newTable(t, e)
	var ran atomic.Bool
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		mustInsert(t, ctx, e, table, "outer")
		return e.Transaction(ctx, func(ctx context.Context) error {
			e.CurrentTransaction(ctx).OnRollback(func(context.Context) { ran.Store(true) })
			mustInsert(t, ctx, e, table, "inner")
			pid := scalar[int32](t, ctx, e, "SELECT pg_backend_pid()")
			scalar[bool](t, context.Background(), killer, "SELECT pg_terminate_backend($1)", pid)
			return insert(ctx, e, table, "dead")
		}, piccolo.Nesting(piccolo.NestSavepoint))
	})
	if err == nil {
		t.Fatal("transaction on a killed connection succeeded")
	}
	if !ran.Load() {
		t.Fatalf("OnRollback hook of the savepoint block did not run (err %v)", err)
	}
	assertNoBorrowed(t, e)
}

// FIXED in 65fa64a (failed on 90610e0, minor): OnCommit/OnRollback on a finished transaction are accepted
// and silently never run. Django runs such a callback at once; pgx-style
// would be to report ErrTransactionDone. Either way, not silence.
func TestReviewHookOnFinishedTransactionIsNotLost(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	ctx, tx, err := e.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Exec(ctx, piccolo.Querystring{SQL: "SELECT 1"}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var ran atomic.Bool
	tx.OnCommit(func(context.Context) { ran.Store(true) })
	if !ran.Load() {
		t.Fatal("OnCommit registered after the commit was silently dropped")
	}
}

// Passes (-race): goroutines hammer a transaction (statements, hooks,
// savepoints, batches, atomics) while another commits it. No data race, no
// panic, no "conn busy", and nothing started after Commit returned succeeds.
// Commit rolls back when it meets an Atomic still open.
func TestReviewTransactionStress(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	table := newTable(t, e)
	ctx, tx, err := e.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var committedAt atomic.Int64
	var seq atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				start := time.Now().UnixNano()
				var err error
				switch i % 5 {
				case 0:
					err = insert(ctx, e, table, fmt.Sprint("g", g, "_", seq.Add(1)))
				case 1:
					tx.OnCommit(func(context.Context) {})
					_ = e.TransactionExists(ctx)
					_, err = e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT $1::int AS x", Args: []any{i}})
				case 2:
					var b *piccolo.Batch
					if b, err = e.Batch(ctx, seriesQuery(30), piccolo.BatchSize(7)); err == nil {
						_, err = b.Next(ctx)
						err = errors.Join(err, b.Close(ctx))
					}
				case 3:
					err = e.Atomic().Add(piccolo.Raw("SELECT 1"), piccolo.Raw("SELECT $1::text", "x")).Run(ctx)
				case 4:
					_, err = tx.Savepoint(ctx, "")
				}
				if err != nil {
					if !errors.Is(err, piccolo.ErrTransactionDone) {
						errs <- fmt.Errorf("goroutine %d op %d: %w", g, i%5, err)
					}
					return
				}
				if at := committedAt.Load(); at != 0 && start > at {
					errs <- fmt.Errorf("goroutine %d op %d started after Commit and succeeded", g, i%5)
					return
				}
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	// An Atomic (a joined block) still open when Commit ends the
	// transaction makes it roll back: half of it must never commit.
	if err := tx.Commit(ctx); err != nil && !errors.Is(err, piccolo.ErrCommitRolledBack) {
		t.Fatal(err)
	}
	committedAt.Store(time.Now().UnixNano())
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assertNoBorrowed(t, e)
}

// FIXED in 65fa64a (failed on 90610e0): a scan callback that panics (recovered by the caller) in the first
// statement of a transaction leaves the connection busy: runStatement's
// batch path (postgres.go:400-426) does not defer br.Close, so every later
// statement of the transaction gets "conn busy". As a later statement
// (rows closed by scanRows' defer) the same panic leaves the transaction
// usable.
func TestReviewScanPanicKeepsTx(t *testing.T) {
	t.Parallel()
	for _, first := range []bool{false, true} {
		t.Run(fmt.Sprintf("first=%v", first), func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, true, piccolo.PostgresConfig{})
			table := newTable(t, e)
			ctx, tx, err := e.Begin(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			if !first {
				mustInsert(t, ctx, e, table, "a")
			}
			func() {
				defer func() { _ = recover() }()
				_ = e.QueryFunc(ctx, piccolo.Querystring{SQL: "SELECT g FROM generate_series(1, 10) g"}, func(pgx.Rows) error {
					panic("decode failed")
				})
			}()
			if err := insert(ctx, e, table, "b"); err != nil {
				t.Fatalf("statement after a recovered scan panic: %v", err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Fixed (was a bug): Atomic's data statements go in one pgx batch in the
// cached-statement mode, which prepares all of them before running any. A
// prepare error (missing table, typo) or a client-side encode error in the
// k-th statement of the group is returned by the FIRST br.Exec, and the
// one-by-one fallback in runInOrder (atomic.go:148) never runs: a prepare
// error inside a transaction block leaves TxStatus 'E', and an encode error
// after statements were queued makes pgx close the connection. The
// AtomicError then names the group's first query, not the failing one.
func TestReviewAtomicIndexOfPrepareAndEncodeErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		bad  piccolo.Query
	}{
		{"prepare error", piccolo.Raw("INSERT INTO review_no_such_table VALUES ($1)", 1)},
		{"encode error", piccolo.Raw("SELECT $1::int2", 70000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, true, piccolo.PostgresConfig{})
			table := newTable(t, e)
			ins := func(name string) piccolo.Query {
				return piccolo.Raw("INSERT INTO "+table+" (name) VALUES ($1)", name)
			}
			err := e.Atomic().Add(ins("a"), ins("b"), tc.bad, ins("c")).Run(context.Background())
			var ae *piccolo.AtomicError
			if !errors.As(err, &ae) || ae.Index != 2 {
				t.Fatalf("Run: %v, want AtomicError at index 2", err)
			}
			if got := names(t, e, table); len(got) != 0 {
				t.Fatalf("rows %v", got)
			}
			assertNoBorrowed(t, e)
		})
	}
}

// Fixed (was a bug): finish takes the connection lock with the caller's
// ctx before anything else (transaction.go finish: c.lock(lockCtx)). When
// ctx has ended and another goroutine still holds the connection, Commit
// returns the lock error and leaves the transaction active: runTx returns
// that error without rolling back, and nobody ever releases the connection.
// DESIGN: the connection is released even when COMMIT fails.
func TestReviewCommitWithEndedContextReleasesConnection(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	table := newTable(t, e)
	ctx, cancel := context.WithCancel(context.Background())
	var tx *piccolo.PostgresTransaction
	var wg sync.WaitGroup
	err := e.Transaction(ctx, func(txCtx context.Context) error {
		tx = e.CurrentTransaction(txCtx)
		mustInsert(t, txCtx, e, table, "a")
		// A worker still using the transaction (with a context of its own)
		// when the request's context is cancelled and the closure returns.
		wg.Go(func() {
			_, _ = e.Exec(context.WithoutCancel(txCtx), piccolo.Querystring{SQL: "SELECT pg_sleep(1)"})
		})
		time.Sleep(200 * time.Millisecond)
		cancel()
		return nil
	})
	wg.Wait()
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) }) // let e.Close finish
	if err == nil {
		t.Fatal("commit with a cancelled context succeeded")
	}
	if !tx.Committed() && !tx.RolledBack() {
		t.Errorf("after Transaction returned %v the transaction is still active", err)
	}
	assertNoBorrowed(t, e)
	if got := names(t, e, table); len(got) != 0 {
		t.Fatalf("rows %v", got)
	}
}

// Fixed (was a minor bug): nest, Savepoint and the hook registration
// take the connection lock with lockQuick, which ignores the context: a
// nested Begin with a 100ms deadline waits for another goroutine's whole
// statement. (The same lock makes OnCommit or a nested Transaction called
// from inside a QueryFunc/NextFunc scan callback deadlock for good.)
func TestReviewNestedBeginHonoursContext(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		var wg sync.WaitGroup
		wg.Go(func() { _, _ = e.Exec(ctx, piccolo.Querystring{SQL: "SELECT pg_sleep(1.5)"}) })
		time.Sleep(300 * time.Millisecond)
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, _, err := e.Begin(short, piccolo.Nesting(piccolo.NestSavepoint))
		waited := time.Since(start)
		wg.Wait()
		if waited > 700*time.Millisecond {
			t.Errorf("nested Begin with a 100ms deadline waited %v (err %v)", waited, err)
		}
		return nil
	})
	if err != nil {
		t.Logf("transaction: %v", err)
	}
}
