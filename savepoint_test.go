package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/piccolo-go/piccolo"
)

func TestSavepoints(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	ctx, tx := mustBegin(t, e)

	mustInsert(t, ctx, e, table, "before")
	sp1 := mustSavepoint(t, ctx, tx, "")
	sp2 := mustSavepoint(t, ctx, tx, "")
	if sp1.Name() != "savepoint_1" || sp2.Name() != "savepoint_2" {
		t.Fatalf("generated names %q, %q", sp1.Name(), sp2.Name())
	}
	named, err := tx.Savepoint(ctx, "My_Point9")
	if err != nil || named.Name() != "My_Point9" {
		t.Fatalf("named savepoint: %v %v", named, err)
	}

	// RollbackTo keeps the rows from before the savepoint, and can repeat.
	for _, attempt := range []string{"first", "second"} {
		mustInsert(t, ctx, e, table, "after "+attempt)
		if err := named.RollbackTo(ctx); err != nil {
			t.Fatalf("rollback to (%s): %v", attempt, err)
		}
	}
	mustInsert(t, ctx, e, table, "kept")
	if err := named.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := named.RollbackTo(ctx); err == nil || !strings.Contains(err.Error(), "3B001") {
		t.Fatalf("rollback to a released savepoint: %v, want SQLSTATE 3B001", err)
	}
	// That failed statement aborted the transaction; an earlier savepoint
	// recovers it, by handle or by name.
	if err := tx.RollbackTo(ctx, "savepoint_2"); err != nil {
		t.Fatal(err)
	}
	mustInsert(t, ctx, e, table, "recovered")
	if err := tx.RollbackTo(ctx, "no_such"); err == nil {
		t.Fatal("rollback to a missing savepoint succeeded")
	}
	if err := sp1.RollbackTo(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	assertRows(t, e, table, "before")
	if _, err := tx.Savepoint(ctx, ""); !errors.Is(err, piccolo.ErrTransactionDone) {
		t.Fatalf("savepoint after commit: %v", err)
	}
}

func TestSavepointNames(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	ctx, tx := mustBegin(t, e)
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"_private", true},
		{"Mixed_Case_123", true},
		{strings.Repeat("x", 63), true},
		{strings.Repeat("x", 64), false},
		{"1starts_with_digit", false},
		{"has space", false},
		{`quote"`, false},
		{"semi;colon", false},
		{"dash-dash", false},
		{"ünïcode", false},
		{"nul\x00", false},
	} {
		sp, err := tx.Savepoint(ctx, tc.name)
		if tc.ok != (err == nil) {
			t.Errorf("Savepoint(%q): %v", tc.name, err)
			continue
		}
		if !tc.ok {
			if !errors.Is(err, piccolo.ErrInvalidSavepointName) {
				t.Errorf("Savepoint(%q): %v, want ErrInvalidSavepointName", tc.name, err)
			}
			if err := tx.RollbackTo(ctx, tc.name); !errors.Is(err, piccolo.ErrInvalidSavepointName) {
				t.Errorf("RollbackTo(%q): %v, want ErrInvalidSavepointName", tc.name, err)
			}
			continue
		}
		if err := sp.RollbackTo(ctx); err != nil {
			t.Errorf("RollbackTo %q: %v", tc.name, err)
		}
	}
}

// A NestSavepoint block reports the outcome the server has: a block whose
// context ended before it did is rolled back to its savepoint with a
// cleanup context (Commit then returns ErrCommitRolledBack wrapping the
// context's error), so the outer commit never keeps rows of a block that
// reported rolled back. The block's pending child savepoint needs no I/O.
func TestSavepointBlockEndsWithCleanupContext(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	for _, tc := range []struct {
		name       string
		commit     bool
		childBlock bool // a nested savepoint block, never used, is still pending
	}{
		{"commit", true, false},
		{"rollback", false, false},
		{"commit with a pending child block", true, true},
		{"rollback with a pending child block", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			table := newTable(t, e)
			ctx, outer := mustBegin(t, e)
			mustInsert(t, ctx, e, table, "outer")
			blockCtx, cancel := context.WithCancel(ctx)
			blockCtx, block := mustBeginIn(t, blockCtx, e, piccolo.Nesting(piccolo.NestSavepoint))
			var rolledBack atomic.Bool
			block.OnRollback(func(context.Context) { rolledBack.Store(true) })
			mustInsert(t, blockCtx, e, table, "inner")
			if tc.childBlock {
				mustBeginIn(t, blockCtx, e, piccolo.Nesting(piccolo.NestSavepoint))
			}
			cancel()
			if tc.commit {
				err := block.Commit(blockCtx)
				if !errors.Is(err, piccolo.ErrCommitRolledBack) || !errors.Is(err, context.Canceled) {
					t.Fatalf("Commit with an ended context: %v, want ErrCommitRolledBack wrapping context.Canceled", err)
				}
			} else if err := block.Rollback(blockCtx); err != nil {
				t.Fatalf("Rollback with an ended context: %v", err)
			}
			if !block.RolledBack() || !rolledBack.Load() {
				t.Fatalf("RolledBack %v, OnRollback ran %v: want both", block.RolledBack(), rolledBack.Load())
			}
			mustInsert(t, ctx, e, table, "after")
			if err := outer.Commit(ctx); err != nil {
				t.Fatalf("outer commit: %v", err)
			}
			assertRows(t, e, table, "outer", "after") // a block reported rolled back was not committed
		})
	}
	t.Run("closure past its deadline", func(t *testing.T) {
		table := newTable(t, e)
		err := e.Transaction(context.Background(), func(ctx context.Context) error {
			short, cancel := context.WithCancel(ctx)
			defer cancel()
			err := e.Transaction(short, func(ctx context.Context) error {
				mustInsert(t, ctx, e, table, "inner")
				cancel()
				return nil // the block's Commit meets the ended context
			}, piccolo.Nesting(piccolo.NestSavepoint))
			if !errors.Is(err, piccolo.ErrCommitRolledBack) {
				t.Errorf("savepoint block ending past its context: %v, want ErrCommitRolledBack", err)
			}
			return insert(ctx, e, table, "outer")
		})
		if err != nil {
			t.Fatal(err)
		}
		assertRows(t, e, table, "outer")
	})
}

// A call that fails on an ended context before anything was sent keeps
// the pending SAVEPOINTs: the block's savepoint still exists afterwards,
// its ROLLBACK TO works and the outer transaction goes on. The error names
// what was not sent, not "begin".
func TestPendingSavepointsSurviveEndedContext(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	for name, call := range map[string]func(ctx context.Context, tx *piccolo.PostgresTransaction, sp *piccolo.Savepoint) error{
		"Batch": func(ctx context.Context, _ *piccolo.PostgresTransaction, _ *piccolo.Savepoint) error {
			_, err := e.Batch(ctx, piccolo.Raw("SELECT 1"))
			return err
		},
		"Exec": func(ctx context.Context, _ *piccolo.PostgresTransaction, _ *piccolo.Savepoint) error {
			_, err := e.Exec(ctx, piccolo.Querystring{SQL: "SELECT 1"})
			return err
		},
		"Savepoint.Release": func(ctx context.Context, _ *piccolo.PostgresTransaction, sp *piccolo.Savepoint) error {
			return sp.Release(ctx)
		},
		"Savepoint.RollbackTo": func(ctx context.Context, _ *piccolo.PostgresTransaction, sp *piccolo.Savepoint) error {
			return sp.RollbackTo(ctx)
		},
		"tx.RollbackTo": func(ctx context.Context, tx *piccolo.PostgresTransaction, sp *piccolo.Savepoint) error {
			return tx.RollbackTo(ctx, sp.Name())
		},
	} {
		t.Run(name, func(t *testing.T) {
			table := newTable(t, e)
			err := e.Transaction(context.Background(), func(ctx context.Context) error {
				mustInsert(t, ctx, e, table, "outer") // BEGIN has been sent
				err := e.Transaction(ctx, func(ctx context.Context) error {
					tx := e.CurrentTransaction(ctx)
					sp, err := tx.Savepoint(ctx, "manual")
					if err != nil {
						return err
					}
					ended, cancel := context.WithCancel(ctx)
					cancel()
					err = call(ended, tx, sp)
					if !errors.Is(err, context.Canceled) {
						t.Errorf("with an ended context: %v, want context.Canceled", err)
					}
					if err != nil && strings.Contains(err.Error(), "begin") {
						t.Errorf("error %q says begin; only SAVEPOINTs were pending", err)
					}
					mustInsert(t, ctx, e, table, "inner")
					return errBoom // ROLLBACK TO the block's savepoint must work
				}, piccolo.Nesting(piccolo.NestSavepoint))
				if !errors.Is(err, errBoom) || strings.Contains(fmt.Sprint(err), "3B001") {
					t.Errorf("block: %v, want errBoom alone", err)
				}
				return insert(ctx, e, table, "after")
			})
			if err != nil {
				t.Fatalf("outer transaction: %v", err)
			}
			assertRows(t, e, table, "outer", "after")
		})
	}
}

// A SAVEPOINT queued before a statement reaches the server even when that
// statement fails before it runs (a prepare error, a syntax error that
// rejects the whole simple-protocol string, an encoding error on the
// client): RollbackTo then recovers the transaction.
func TestSavepointSurvivesAFailedFirstStatement(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		q    piccolo.Querystring
	}{
		{"prepare error (batch path)", piccolo.Querystring{SQL: "INSERT INTO no_such_table VALUES ($1)", Args: []any{1}}},
		{"prepare error in a read", piccolo.Querystring{SQL: "SELECT * FROM no_such_table"}},
		{"syntax error (simple protocol)", piccolo.Querystring{SQL: "INSERT INTO no_such_table VALUE (1)"}},
		{"client-side encode error", piccolo.Querystring{SQL: "SELECT $1::int", Args: []any{make(chan int)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, table := pooledTable(t)
			ctx, tx := mustBegin(t, e)
			mustInsert(t, ctx, e, table, "before")
			sp := mustSavepoint(t, ctx, tx, "try")
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
			assertRows(t, e, table, "before", "after")
		})
	}
}

// Generated savepoint names (savepoint_N) skip names the caller chose:
// PostgreSQL resolves a name to its newest savepoint, so a collision would
// send RollbackTo to the wrong point.
func TestGeneratedSavepointNamesAvoidTheCallersNames(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	ctx, tx := mustBegin(t, e)
	mustInsert(t, ctx, e, table, "a")
	mine := mustSavepoint(t, ctx, tx, "savepoint_1")
	mustInsert(t, ctx, e, table, "b")
	generated := mustSavepoint(t, ctx, tx, "")
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
