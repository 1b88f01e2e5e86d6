package piccolo_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/piccolo-go/piccolo"
)

// memTracer records what pgx's tracer interfaces report, as an
// OpenTelemetry integration for pgx would see it.
type memTracer struct {
	node string
	mu   sync.Mutex
	seen []traced
}

type traced struct {
	node, sql string
	start     time.Time
	took      time.Duration
	err       error
}

type startKey struct{}

func (m *memTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, startKey{}, traced{sql: data.SQL, start: time.Now()})
}

func (m *memTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	tr := ctx.Value(startKey{}).(traced)
	m.record(tr.sql, data.Err, time.Since(tr.start))
}

func (m *memTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return context.WithValue(ctx, startKey{}, traced{start: time.Now()})
}

func (m *memTracer) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	m.record(data.SQL, data.Err, time.Since(ctx.Value(startKey{}).(traced).start))
}

func (m *memTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func (m *memTracer) record(sql string, err error, took time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seen = append(m.seen, traced{node: m.node, sql: sql, err: err, took: took})
}

func (m *memTracer) allTimed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.seen {
		if s.took <= 0 {
			return false
		}
	}
	return len(m.seen) > 0
}

func (m *memTracer) statements() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, s := range m.seen {
		out = append(out, s.node+": "+s.sql)
	}
	return out
}

func TestTracerSeesEveryStatement(t *testing.T) {
	t.Parallel()
	primaryTracer := &memTracer{node: "primary"}
	replicaTracer := &memTracer{node: "r1"}
	logger, logs := newLogger()
	replica := newEngine(t, false, piccolo.PostgresConfig{Tracer: replicaTracer})
	e := newEngine(t, false, piccolo.PostgresConfig{
		Tracer:     primaryTracer,
		LogQueries: true, Logger: logger, // the engine's logging runs beside the tracer
		ExtraNodes: map[string]*piccolo.PostgresEngine{"r1": replica},
	})
	ctx := context.Background()
	if err := e.StartConnectionPool(ctx); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	table := newTable(t, e)
	err := e.Transaction(ctx, func(ctx context.Context) error {
		if err := insert(ctx, e, table, "a"); err != nil {
			return err
		}
		b, err := e.Batch(ctx, piccolo.Raw("SELECT name FROM "+table), piccolo.BatchSize(10))
		if err != nil {
			return err
		}
		_, err = b.Next(ctx)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Atomic().Add(piccolo.Raw("INSERT INTO "+table+" (name) VALUES ($1)", "b"), piccolo.Raw("INSERT INTO "+table+" (name) VALUES ($1)", "c")).Run(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT 'on the node'"}, piccolo.OnNode("r1")); err != nil {
		t.Fatal(err)
	}
	got := primaryTracer.statements()
	for _, want := range []string{"BEGIN", "INSERT INTO", "DECLARE", "FETCH FORWARD 10", "CLOSE", "COMMIT"} {
		if !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "primary: "+want) }) {
			t.Errorf("the primary's tracer did not see %q; saw %q", want, got)
		}
	}
	atomicInserts := 0
	for _, s := range got {
		if strings.Contains(s, "VALUES ($1)") {
			atomicInserts++
		}
	}
	if atomicInserts != 3 {
		t.Errorf("tracer saw %d parameterised inserts, want 3 (1 + the Atomic's 2)", atomicInserts)
	}
	if r := replicaTracer.statements(); !slices.Equal(r, []string{"r1: SELECT 'on the node'"}) {
		t.Errorf("the node's tracer saw %q", r)
	}
	if slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "on the node") }) {
		t.Error("the node's statement reached the primary's tracer")
	}
	if !primaryTracer.allTimed() || !replicaTracer.allTimed() {
		t.Error("a traced statement has no duration")
	}
	if !strings.Contains(logs.String(), "FETCH FORWARD 10") {
		t.Error("the engine's own logging stopped when a tracer was set")
	}
}

// TestConfigureTracerRunsBesideTracerAndLogging pins that a pgx tracer set
// in ConnConfig.Tracer by Configure (as pgx integrations are usually
// installed) is kept: it runs beside PostgresConfig.Tracer and the
// engine's own logging, on pooled and one-shot connections.
func TestConfigureTracerRunsBesideTracerAndLogging(t *testing.T) {
	t.Parallel()
	configured, given := &memTracer{node: "configure"}, &memTracer{node: "tracer"}
	logger, logs := newLogger()
	e := newEngine(t, false, piccolo.PostgresConfig{
		Tracer: given, LogQueries: true, Logger: logger,
		Configure: func(c *pgxpool.Config) { c.ConnConfig.Tracer = configured },
	})
	ctx := context.Background()
	if _, err := e.Exec(ctx, piccolo.Raw("SELECT 'one-shot'")); err != nil {
		t.Fatal(err)
	}
	if err := e.StartConnectionPool(ctx); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Exec(ctx, piccolo.Raw("SELECT 'pooled'")); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*memTracer{configured, given} {
		got := m.statements()
		for _, want := range []string{"SELECT 'one-shot'", "SELECT 'pooled'"} {
			if !slices.Contains(got, m.node+": "+want) {
				t.Errorf("the %s tracer did not see %s; saw %q", m.node, want, got)
			}
		}
	}
	if !strings.Contains(logs.String(), "SELECT 'pooled'") {
		t.Error("the engine's logging stopped when Configure set a tracer")
	}
}
