// Package piccolootel makes OpenTelemetry spans of piccolo's transaction
// blocks: one span per block, from its start (Transaction, Begin) to its
// COMMIT or ROLLBACK, with its kind, its attempt under Retry and its
// outcome; nested blocks are children of the block they open in, and
// statements traced by a pgx tracer such as otelpgx are children of the
// block they run in. It is built on the OpenTelemetry API alone (the
// application chooses the SDK) and lives in a module of its own, so that
// piccolo's go.mod does not gain OpenTelemetry.
//
//	engine, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{
//		DSN:      dsn,
//		TxTracer: piccolootel.NewTxTracer(),
//	})
package piccolootel

import (
	"context"

	"github.com/piccolo-go/piccolo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the spans.
const ScopeName = "github.com/piccolo-go/piccolo/piccolootel"

// The attributes of a block's span.
const (
	KindKey        = attribute.Key("piccolo.tx.kind")         // root, joined or savepoint
	AttemptKey     = attribute.Key("piccolo.tx.attempt")      // the run under Retry, from 1
	MaxAttemptsKey = attribute.Key("piccolo.tx.max_attempts") // what Retry allows
	OutcomeKey     = attribute.Key("piccolo.tx.outcome")      // committed, rolled back or unknown
)

// TxTracer is a piccolo.TxTracer that makes a span of each transaction
// block. Its zero value is not usable: create one with NewTxTracer.
type TxTracer struct {
	tracer trace.Tracer
}

var _ piccolo.TxTracer = (*TxTracer)(nil)

// Option configures NewTxTracer.
type Option func(*options)

type options struct {
	provider trace.TracerProvider
}

// WithTracerProvider makes the spans with provider instead of the global
// one (otel.GetTracerProvider at NewTxTracer's call).
func WithTracerProvider(provider trace.TracerProvider) Option {
	return func(o *options) { o.provider = provider }
}

// NewTxTracer returns a TxTracer to set in piccolo.PostgresConfig.TxTracer.
func NewTxTracer(opts ...Option) *TxTracer {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.provider == nil {
		o.provider = otel.GetTracerProvider()
	}
	return &TxTracer{tracer: o.provider.Tracer(ScopeName)}
}

// spanNames are the span names by block kind: low-cardinality, as
// OpenTelemetry asks.
var spanNames = map[piccolo.TxKind]string{
	piccolo.TxRoot:      "transaction",
	piccolo.TxJoined:    "transaction joined block",
	piccolo.TxSavepoint: "transaction savepoint block",
}

// TraceTxStart implements piccolo.TxTracer: it starts the block's span as
// a child of ctx's.
func (t *TxTracer) TraceTxStart(ctx context.Context, data piccolo.TraceTxStartData) context.Context {
	ctx, _ = t.tracer.Start(ctx, spanNames[data.Kind],
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(
			KindKey.String(data.Kind.String()),
			AttemptKey.Int(data.Attempt),
			MaxAttemptsKey.Int(data.MaxAttempts),
		))
	return ctx
}

// TraceTxEnd implements piccolo.TxTracer: it records the outcome and ends
// the span. A block that did not commit has an error status, with its
// error recorded when there is one.
func (t *TxTracer) TraceTxEnd(ctx context.Context, data piccolo.TraceTxEndData) {
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(OutcomeKey.String(data.Outcome.String()))
	if data.Outcome != piccolo.TxCommitted {
		desc := "transaction block " + data.Outcome.String()
		if data.Err != nil {
			span.RecordError(data.Err)
			desc = data.Err.Error()
		}
		span.SetStatus(codes.Error, desc)
	}
	span.End()
}
