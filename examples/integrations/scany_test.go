package integrations_test

import (
	"context"
	"errors"
	"testing"

	"github.com/georgysavva/scany/v2/pgxscan"
	"github.com/jackc/pgx/v5"
	"github.com/piccolo-go/piccolo"
)

type author struct {
	ID   int64
	Name string
}

// scany's pgxscan runs on the engine's Querier: inside engine.Transaction
// its Select and Get share the transaction (its txid, its uncommitted
// rows) and roll back with it; outside, they run on the pool.
func TestScanyOnTheQuerier(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEngine(t, piccolo.PostgresConfig{})
	q := e.Querier()
	mustExec(t, ctx, e, "CREATE TABLE authors (id bigserial PRIMARY KEY, name text NOT NULL)")
	mustExec(t, ctx, e, "INSERT INTO authors (name) VALUES ('Ada'), ('Grace')")
	errStop := errors.New("stop")
	err := e.Transaction(ctx, func(ctx context.Context) error {
		mustExec(t, ctx, e, "INSERT INTO authors (name) VALUES ('Uncommitted')")
		var all []author
		if err := pgxscan.Select(ctx, q, &all, "SELECT id, name FROM authors ORDER BY id"); err != nil {
			return err
		}
		if len(all) != 3 || all[2].Name != "Uncommitted" {
			t.Errorf("Select in the transaction = %+v, want its uncommitted row too", all)
		}
		var scanyTxid int64
		if err := pgxscan.Get(ctx, q, &scanyTxid, "SELECT txid_current()"); err != nil {
			return err
		}
		rows, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT txid_current() AS txid"})
		if err != nil {
			return err
		}
		if rows[0]["txid"] != scanyTxid {
			t.Errorf("txid: scany %d, engine %v: not the same transaction", scanyTxid, rows[0]["txid"])
		}
		var a author
		if err := pgxscan.Get(ctx, q, &a, "SELECT id, name FROM authors WHERE name = $1", "Grace"); err != nil {
			return err
		}
		if a.Name != "Grace" || a.ID == 0 {
			t.Errorf("Get = %+v", a)
		}
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Transaction: %v, want the closure's error", err)
	}
	var names []string
	if err := pgxscan.Select(ctx, q, &names, "SELECT name FROM authors ORDER BY id"); err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 {
		t.Errorf("after the rollback, outside a transaction: %q, want Ada and Grace", names)
	}
	var a author
	if err := pgxscan.Get(ctx, q, &a, "SELECT id, name FROM authors WHERE name = 'nobody'"); !errors.Is(err, pgx.ErrNoRows) {
		t.Errorf("Get of no row: %v, want pgx.ErrNoRows", err)
	}
	if n := e.Stat().AcquiredConns(); n != 0 {
		t.Errorf("%d connections still borrowed: scany's rows were not given back", n)
	}
}
