package integrations_test

import (
	"context"
	"os"
	"testing"

	"github.com/piccolo-go/piccolo"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// goose runs real migrations through the *sql.DB that engine.DB shares
// with the engine's pool, under goose's session advisory lock (why it
// needs the primary, not PgBouncer in transaction mode): up, status, down,
// on a fresh database.
func TestGooseMigrationsThroughDB(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEngine(t, piccolo.PostgresConfig{})
	db, err := e.DB()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, os.DirFS("testdata/migrations"), goose.WithSessionLocker(locker))
	if err != nil {
		t.Fatal(err)
	}
	states := func() []goose.State {
		t.Helper()
		status, err := p.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []goose.State
		for _, s := range status {
			out = append(out, s.State)
		}
		return out
	}
	if got := states(); len(got) != 2 || got[0] != goose.StatePending || got[1] != goose.StatePending {
		t.Fatalf("status of a fresh database: %v, want two pending", got)
	}
	results, err := p.Up(ctx)
	if err != nil || len(results) != 2 {
		t.Fatalf("Up: %v, %d migrations", err, len(results))
	}
	if got := states(); got[0] != goose.StateApplied || got[1] != goose.StateApplied {
		t.Fatalf("status after Up: %v, want both applied", got)
	}
	// The engine sees the migrated schema.
	mustExec(t, ctx, e, "INSERT INTO authors (name) VALUES ('Ada')")
	mustExec(t, ctx, e, "INSERT INTO books (author_id, title) VALUES (1, 'Notes')")
	mustExec(t, ctx, e, "DELETE FROM books")
	if _, err := p.Down(ctx); err != nil {
		t.Fatal(err)
	}
	if got := states(); got[0] != goose.StateApplied || got[1] != goose.StatePending {
		t.Fatalf("status after Down: %v, want applied then pending", got)
	}
	if v, err := p.GetDBVersion(ctx); err != nil || v != 1 {
		t.Fatalf("version after Down: %d %v, want 1", v, err)
	}
	if _, err := e.Querier().Exec(ctx, "SELECT 1 FROM books"); err == nil {
		t.Fatal("books still exists after Down")
	}
	if n := e.Stat().AcquiredConns(); n != 0 {
		t.Errorf("%d connections still borrowed after goose", n)
	}
}
