package sqlcexample_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/examples/sqlc/db"
	"github.com/piccolo-go/piccolo/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// newQueries returns a pooled engine on a fresh database holding
// schema.sql, and sqlc's Queries on its Querier.
func newQueries(t *testing.T) (*piccolo.PostgresEngine, *db.Queries) {
	t.Helper()
	ctx := context.Background()
	e, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{DSN: pgtest.NewDatabase(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.StartConnectionPool(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	schema, err := os.ReadFile("schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.RunDDL(ctx, string(schema)); err != nil {
		t.Fatal(err)
	}
	return e, db.New(e.Querier())
}

// count returns how many authors are committed.
func count(t *testing.T, q *db.Queries) int64 {
	t.Helper()
	n, err := q.CountAuthors(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func author(name string) db.CreateAuthorParams {
	return db.CreateAuthorParams{Name: name, Bio: pgtype.Text{String: "bio of " + name, Valid: true}}
}

// Inside engine.Transaction, sqlc's queries run in the transaction: they
// share its txid with the engine's statements and roll back with it.
func TestSqlcQueriesShareTheTransaction(t *testing.T) {
	t.Parallel()
	e, q := newQueries(t)
	errStop := errors.New("stop")
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		a, err := q.CreateAuthor(ctx, author("Ursula"))
		if err != nil {
			return err
		}
		got, err := q.GetAuthor(ctx, a.ID)
		if err != nil || got.Name != "Ursula" {
			t.Errorf("GetAuthor in the transaction: %v %v", got, err)
		}
		txid, err := q.CurrentTxid(ctx)
		if err != nil {
			return err
		}
		rows, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT txid_current()::bigint AS txid"})
		if err != nil || rows[0]["txid"] != txid {
			t.Errorf("txid: sqlc %d, engine %v %v", txid, rows, err)
		}
		if n := count(t, q); n != 0 {
			t.Errorf("%d authors committed before the transaction ended", n)
		}
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Transaction: %v", err)
	}
	if n := count(t, q); n != 0 {
		t.Fatalf("%d authors after rollback, want 0", n)
	}
}

// A NestSavepoint block rolls back only the sqlc queries it ran.
func TestSqlcSavepointBlockRollsBackOnlyItsPart(t *testing.T) {
	t.Parallel()
	e, q := newQueries(t)
	errInner := errors.New("inner fails")
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		if _, err := q.CreateAuthor(ctx, author("outer")); err != nil {
			return err
		}
		err := e.Transaction(ctx, func(ctx context.Context) error {
			if _, err := q.CreateAuthor(ctx, author("inner")); err != nil {
				return err
			}
			return errInner
		}, piccolo.Nesting(piccolo.NestSavepoint))
		if !errors.Is(err, errInner) {
			t.Errorf("savepoint block: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	authors, err := q.ListAuthors(context.Background())
	if err != nil || len(authors) != 1 || authors[0].Name != "outer" {
		t.Fatalf("authors: %v %v, want [outer]", authors, err)
	}
}

// Retry re-runs the closure's sqlc queries from BEGIN: the failed
// attempt's rows are rolled back.
func TestSqlcQueriesRunAgainUnderRetry(t *testing.T) {
	t.Parallel()
	e, q := newQueries(t)
	attempts := 0
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		attempts++
		if _, err := q.CreateAuthor(ctx, author("once")); err != nil {
			return err
		}
		if attempts == 1 {
			_, err := e.Exec(ctx, piccolo.Querystring{SQL: `DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$`})
			return err
		}
		return nil
	}, piccolo.Retry(3))
	if err != nil || attempts != 2 {
		t.Fatalf("Transaction: %v after %d attempts, want nil after 2", err, attempts)
	}
	if n := count(t, q); n != 1 {
		t.Fatalf("%d authors, want the retried attempt's 1", n)
	}
}

// Outside a transaction, sqlc's queries borrow pooled connections and give
// them all back.
func TestSqlcOutsideTransactionUsesThePool(t *testing.T) {
	t.Parallel()
	e, q := newQueries(t)
	ctx := context.Background()
	a, err := q.CreateAuthor(ctx, author("pooled"))
	if err != nil {
		t.Fatal(err)
	}
	if authors, err := q.ListAuthors(ctx); err != nil || len(authors) != 1 {
		t.Fatalf("ListAuthors: %v %v", authors, err)
	}
	if err := q.DeleteAuthor(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := q.GetAuthor(ctx, a.ID); !errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("GetAuthor of a deleted author: %v, want pgx.ErrNoRows", err)
	}
	if s := e.Stat(); s.AcquiredConns() != 0 {
		t.Fatalf("%d connections still borrowed", s.AcquiredConns())
	}
}

// A :copyfrom and a :batchexec query run in the transaction and roll back
// with it.
func TestSqlcCopyFromAndBatchExecInTransaction(t *testing.T) {
	t.Parallel()
	e, q := newQueries(t)
	errStop := errors.New("stop")
	err := e.Transaction(context.Background(), func(ctx context.Context) error {
		n, err := q.CopyAuthors(ctx, []db.CopyAuthorsParams{{Name: "a"}, {Name: "b"}})
		if err != nil || n != 2 {
			t.Fatalf("CopyAuthors: %d %v", n, err)
		}
		authors, err := q.ListAuthors(ctx)
		if err != nil || len(authors) != 2 {
			t.Fatalf("ListAuthors: %v %v", authors, err)
		}
		var batchErr error
		q.RenameAuthors(ctx, []db.RenameAuthorsParams{
			{ID: authors[0].ID, Name: "a2"}, {ID: authors[1].ID, Name: "b2"},
		}).Exec(func(_ int, err error) {
			batchErr = errors.Join(batchErr, err)
		})
		if batchErr != nil {
			t.Fatalf("RenameAuthors: %v", batchErr)
		}
		if renamed, err := q.ListAuthors(ctx); err != nil || renamed[0].Name != "a2" || renamed[1].Name != "b2" {
			t.Fatalf("after RenameAuthors: %v %v", renamed, err)
		}
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Transaction: %v", err)
	}
	if n := count(t, q); n != 0 {
		t.Fatalf("%d authors after rollback, want 0", n)
	}
	if s := e.Stat(); s.AcquiredConns() != 0 {
		t.Fatalf("%d connections still borrowed", s.AcquiredConns())
	}
}
