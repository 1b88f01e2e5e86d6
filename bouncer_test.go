package piccolo_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/internal/pgcluster"
)

// TestBouncerTransactionPooling runs the engine's transactions, savepoints,
// nested blocks, batches and Atomic through PgBouncer in transaction
// pooling mode, in the exec modes that leave no named prepared statement
// on a server connection another client may get next.
func TestBouncerTransactionPooling(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop(context.Background()) })
	// Two server connections for many clients: transactions of different
	// clients share backends, as in production.
	bouncer, err := pgcluster.StartBouncer(ctx, cluster, pgcluster.BouncerOptions{PoolMode: pgcluster.PoolTransaction, DefaultPoolSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bouncer.Stop(context.Background()) })

	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeExec, pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			e := newEngine(t, true, piccolo.PostgresConfig{DSN: bouncer.DSN("postgres"), QueryExecMode: mode, MaxConns: 8})
			table := newTable(t, e)
			exerciseThroughPooler(t, e, table)
			assertNoBorrowed(t, e)
		})
	}
}

func exerciseThroughPooler(t *testing.T, e *piccolo.PostgresEngine, table string) {
	t.Helper()
	ctx := context.Background()
	sp := piccolo.Nesting(piccolo.NestSavepoint)
	// A transaction that commits, with a failing savepoint block and an
	// explicit savepoint rolled back to.
	err := e.Transaction(ctx, func(ctx context.Context) error {
		for _, n := range []string{"a", "b"} {
			if err := insert(ctx, e, table, n); err != nil {
				return err
			}
		}
		_ = e.Transaction(ctx, func(ctx context.Context) error {
			if err := insert(ctx, e, table, "lost"); err != nil {
				return err
			}
			return errBoom
		}, sp)
		s, err := e.CurrentTransaction(ctx).Savepoint(ctx, "")
		if err != nil {
			return err
		}
		if err := insert(ctx, e, table, "undone"); err != nil {
			return err
		}
		if err := s.RollbackTo(ctx); err != nil {
			return err
		}
		return e.Transaction(ctx, func(ctx context.Context) error { return insert(ctx, e, table, "c") }, sp)
	})
	if err != nil {
		t.Fatalf("transaction: %v", err)
	}
	// One that rolls back.
	if err := e.Transaction(ctx, func(ctx context.Context) error {
		if err := insert(ctx, e, table, "x"); err != nil {
			return err
		}
		return errBoom
	}); !errors.Is(err, errBoom) {
		t.Fatalf("rolled-back transaction: %v", err)
	}
	assertRows(t, e, table, "a", "b", "c")
	// Atomic: DDL, then statements that need it, in one transaction.
	err = e.Atomic().Add(
		piccolo.Raw("ALTER TABLE "+table+" ADD COLUMN note text"),
		piccolo.Raw("UPDATE "+table+" SET note = $1 WHERE name = $2", "first", "a"),
		piccolo.Raw("UPDATE "+table+" SET note = $1 WHERE name = $2", "second", "b"),
	).Run(ctx)
	if err != nil {
		t.Fatalf("atomic: %v", err)
	}
	// Atomics of data statements only: once described (the first run),
	// BEGIN, the statements and COMMIT go as one pipeline; a failure in it
	// names its query and commits nothing.
	for range 2 {
		err = e.Atomic().Add(
			piccolo.Raw("UPDATE "+table+" SET note = $1 WHERE name = $2", "first", "a"),
			piccolo.Raw("UPDATE "+table+" SET note = $1 WHERE name = $2", "second", "b"),
		).Run(ctx)
		if err != nil {
			t.Fatalf("atomic of data statements: %v", err)
		}
		err = e.Atomic().Add(
			piccolo.Raw("UPDATE "+table+" SET note = $1 WHERE name = $2", "lost", "a"),
			piccolo.Raw("UPDATE "+table+" SET note = $1 WHERE name = $2 AND 1 / (length(name) - 1) = 1", "lost", "b"),
		).Run(ctx)
		var ae *piccolo.AtomicError
		if !errors.As(err, &ae) || ae.Index != 1 {
			t.Fatalf("atomic whose second statement fails: %v, want an *AtomicError at index 1", err)
		}
		if n := scalar[int64](t, ctx, e, "SELECT count(*) FROM "+table+" WHERE note = 'lost'"); n != 0 {
			t.Fatalf("a failed Atomic committed %d rows", n)
		}
	}
	// Batches, on their own and inside a transaction.
	count := func(ctx context.Context) int {
		b, err := e.Batch(ctx, piccolo.Raw("SELECT name, note FROM "+table+" ORDER BY id"), piccolo.BatchSize(2))
		if err != nil {
			t.Fatalf("batch: %v", err)
		}
		n := 0
		for rows, err := range b.All(ctx) {
			if err != nil {
				t.Fatalf("batch: %v", err)
			}
			n += len(rows)
		}
		return n
	}
	if n := count(ctx); n != 3 {
		t.Fatalf("batch read %d rows", n)
	}
	err = e.Transaction(ctx, func(ctx context.Context) error {
		if err := insert(ctx, e, table, "d"); err != nil {
			return err
		}
		if n := count(ctx); n != 4 {
			t.Errorf("batch in the transaction read %d rows, want 4", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Many clients at once, repeatedly: each statement's description and
	// parameters must not depend on which backend PgBouncer picks.
	errs := make(chan error, 40)
	for i := range 40 {
		go func() {
			errs <- e.Transaction(ctx, func(ctx context.Context) error {
				_, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT count(*) FROM " + table + " WHERE id > $1", Args: []any{i % 3}})
				return err
			})
		}()
	}
	for range 40 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent transactions through the pooler: %v", err)
		}
	}
}
