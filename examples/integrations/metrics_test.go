package integrations_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/IBM/pgxpoolprometheus"
	"github.com/exaring/otelpgx"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/pgtest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// pgxpoolprometheus's collector takes the engine and its node unchanged
// (they have pgxpool.Pool's Stat) and reads live figures: the connection a
// transaction holds is counted acquired while it runs, and given back
// after.
func TestPrometheusCollectorReadsTheEngine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	node, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{DSN: pgtest.DSN(t), MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, piccolo.PostgresConfig{MaxConns: 5, ExtraNodes: map[string]*piccolo.PostgresEngine{"replica": node}})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(pgxpoolprometheus.NewCollector(e, map[string]string{"node": "primary"}))
	reg.MustRegister(pgxpoolprometheus.NewCollector(node, map[string]string{"node": "replica"}))
	gauge := func(name, nodeName string) float64 {
		t.Helper()
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() != name {
				continue
			}
			for _, m := range f.GetMetric() {
				if m.GetLabel()[0].GetValue() == nodeName {
					return m.GetGauge().GetValue() + m.GetCounter().GetValue()
				}
			}
		}
		t.Fatalf("no %s for %s", name, nodeName)
		return 0
	}
	if got := gauge("pgxpool_max_conns", "primary"); got != 5 {
		t.Errorf("primary max conns %v, want 5", got)
	}
	if got := gauge("pgxpool_max_conns", "replica"); got != 2 {
		t.Errorf("replica max conns %v, want 2", got)
	}
	primary := pgxpoolprometheus.NewCollector(e, map[string]string{"node": "primary"})
	// acquired compares the scrape of one metric, as Prometheus reads it.
	acquired := func(want int) {
		t.Helper()
		text := "# HELP pgxpool_acquired_conns Number of currently acquired connections in the pool.\n" +
			"# TYPE pgxpool_acquired_conns gauge\n" +
			fmt.Sprintf("pgxpool_acquired_conns{node=\"primary\"} %d\n", want)
		if err := testutil.CollectAndCompare(primary, strings.NewReader(text), "pgxpool_acquired_conns"); err != nil {
			t.Error(err)
		}
	}
	acquired(0)
	err = e.Transaction(ctx, func(ctx context.Context) error {
		mustExec(t, ctx, e, "SELECT 1")
		acquired(1) // the transaction's connection
		if got := gauge("pgxpool_acquired_conns", "primary"); got != 1 {
			t.Errorf("acquired while a transaction runs: %v, want 1", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := gauge("pgxpool_acquired_conns", "primary"); got != 0 {
		t.Errorf("acquired after the transaction: %v, want 0", got)
	}
	if got := gauge("pgxpool_acquire_count", "primary"); got < 2 {
		t.Errorf("acquire count %v, want the ping's and the transaction's", got)
	}
	acquired(0)
	before := gauge("pgxpool_acquire_count", "replica")
	if _, err := e.Exec(ctx, piccolo.Raw("SELECT 1"), piccolo.OnNode("replica")); err != nil {
		t.Fatal(err)
	}
	if got := gauge("pgxpool_acquire_count", "replica"); got != before+1 {
		t.Errorf("the node's acquire count went from %v to %v after a statement on it, want +1", before, got)
	}
	e.Close()
	if got := gauge("pgxpool_total_conns", "primary"); got != 0 {
		t.Errorf("total conns after Close: %v, want 0 (a never-run pool's figures, no panic)", got)
	}
}

// otelpgx.RecordStats takes the engine unchanged (Stat and Config) and
// an OpenTelemetry manual reader collects live pool figures from it.
func TestOtelpgxRecordStatsReadsTheEngine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEngine(t, piccolo.PostgresConfig{MaxConns: 4})
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = provider.Shutdown(ctx) }()
	if err := otelpgx.RecordStats(e, otelpgx.WithStatsMeterProvider(provider), otelpgx.WithMinimumReadDBStatsInterval(0)); err != nil {
		t.Fatal(err)
	}
	value := func(name string) int64 {
		t.Helper()
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(ctx, &rm); err != nil {
			t.Fatal(err)
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if m.Name != name {
					continue
				}
				switch d := m.Data.(type) {
				case metricdata.Gauge[int64]:
					return d.DataPoints[0].Value
				case metricdata.Sum[int64]:
					return d.DataPoints[0].Value
				}
				t.Fatalf("%s has data %T", name, m.Data)
			}
		}
		t.Fatalf("no metric %s", name)
		return 0
	}
	if got := value("pgxpool.max_connections"); got != 4 {
		t.Errorf("max connections %d, want 4", got)
	}
	ctx2, tx, err := e.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, ctx2, e, "SELECT 1")
	if got := value("pgxpool.acquired_connections"); got != 1 {
		t.Errorf("acquired while a transaction runs: %d, want 1", got)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := value("pgxpool.acquired_connections"); got != 0 {
		t.Errorf("acquired after Commit: %d, want 0", got)
	}
}
