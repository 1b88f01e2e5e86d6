package integrations_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// newEngine returns an engine with a running pool on a fresh database of
// the test's own (pgtest drops it when the test ends), configured by cfg
// (its DSN is set here).
func newEngine(t *testing.T, cfg piccolo.PostgresConfig) *piccolo.PostgresEngine {
	t.Helper()
	cfg.DSN = pgtest.NewDatabase(t)
	e, err := piccolo.NewPostgresEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.StartConnectionPool(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// mustExec runs sql on e with ctx, failing the test on an error.
func mustExec(t *testing.T, ctx context.Context, e *piccolo.PostgresEngine, sql string, args ...any) {
	t.Helper()
	if _, err := e.Querier().Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// newTextLogger returns a logger writing text records to w.
func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, nil))
}
