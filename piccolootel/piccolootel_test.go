package piccolootel_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/pgtest"
	"github.com/piccolo-go/piccolo/piccolootel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// span is what a test checks of a recorded span.
type span struct {
	name, parent     string
	kind, outcome    string
	attempt, maxRuns int64
	failed           bool
}

// spans returns the recorded spans in the order they ended, parents named.
func spans(rec *tracetest.SpanRecorder) []span {
	ended := rec.Ended()
	names := map[any]string{}
	for _, s := range ended {
		names[s.SpanContext().SpanID()] = s.Name()
	}
	var out []span
	for _, s := range ended {
		attrs := attribute.NewSet(s.Attributes()...)
		get := func(k attribute.Key) attribute.Value { v, _ := attrs.Value(k); return v }
		out = append(out, span{
			name: s.Name(), parent: names[s.Parent().SpanID()],
			kind: get(piccolootel.KindKey).AsString(), outcome: get(piccolootel.OutcomeKey).AsString(),
			attempt: get(piccolootel.AttemptKey).AsInt64(), maxRuns: get(piccolootel.MaxAttemptsKey).AsInt64(),
			failed: s.Status().Code == codes.Error,
		})
	}
	return out
}

// One span per transaction block, recorded in memory by the SDK's
// tracetest: each attempt under Retry is a transaction span of its own
// under the caller's, with its number and outcome; nested blocks are
// children of the block they open in; a failed block has an error status.
func TestTransactionSpans(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	e, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{
		DSN:      pgtest.DSN(t),
		TxTracer: piccolootel.NewTxTracer(piccolootel.WithTracerProvider(tp)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.StartConnectionPool(ctx); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, root := tp.Tracer("test").Start(ctx, "request")
	errInner := errors.New("inner failed")
	runs := 0
	err = e.Transaction(ctx, func(ctx context.Context) error {
		if runs++; runs == 1 {
			return &pgconn.PgError{Severity: "ERROR", Code: "40001", Message: "simulated serialization failure"}
		}
		if _, err := e.Exec(ctx, piccolo.Raw("SELECT 1")); err != nil {
			return err
		}
		_ = e.Transaction(ctx, func(ctx context.Context) error {
			return e.Transaction(ctx, func(ctx context.Context) error { return errInner })
		}, piccolo.Nesting(piccolo.NestSavepoint))
		return nil
	}, piccolo.Retry(2))
	if err != nil {
		t.Fatal(err)
	}
	root.End()
	want := []span{
		{name: "transaction", parent: "request", kind: "root", outcome: "rolled back", attempt: 1, maxRuns: 2, failed: true},
		{name: "transaction joined block", parent: "transaction savepoint block", kind: "joined", outcome: "rolled back", attempt: 1, maxRuns: 1, failed: true},
		{name: "transaction savepoint block", parent: "transaction", kind: "savepoint", outcome: "rolled back", attempt: 1, maxRuns: 1, failed: true},
		{name: "transaction", parent: "request", kind: "root", outcome: "committed", attempt: 2, maxRuns: 2},
		{name: "request"},
	}
	if got := spans(rec); !slices.Equal(got, want) {
		t.Errorf("spans\n%+v\nwant\n%+v", got, want)
	}
}
