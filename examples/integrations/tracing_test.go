package integrations_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/piccolootel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// newTracing returns a tracer provider whose spans the returned recorder
// keeps in memory, and a context under a recording root span of it (otelpgx
// makes statement spans only under a recording span).
func newTracing(t *testing.T) (*sdktrace.TracerProvider, *tracetest.SpanRecorder, context.Context, trace.Span) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, root := tp.Tracer("test").Start(context.Background(), "test")
	return tp, rec, ctx, root
}

// statementSpans returns the SQL of the ended statement spans otelpgx made
// (named "query " and the full SQL), in the order they ended, and their
// parents. pgx's own describe steps ("prepare ...") and pool acquisitions
// are left out.
func statementSpans(rec *tracetest.SpanRecorder, root trace.Span) (sqls []string, parents []trace.SpanID) {
	for _, s := range rec.Ended() {
		sql, ok := strings.CutPrefix(s.Name(), "query ")
		if !ok || s.InstrumentationScope().Name != "github.com/exaring/otelpgx" {
			continue
		}
		sqls = append(sqls, sql)
		parents = append(parents, s.Parent().SpanID())
	}
	return sqls, parents
}

// The real otelpgx tracer, installed as pgx documents it (ConnConfig.Tracer
// through Configure), runs beside the engine's own logging and makes one
// span per statement the engine sends: BEGIN and SAVEPOINT (pipelined with
// the statement that needs them), the statements, the cursor's DECLARE,
// FETCH and CLOSE, RELEASE and COMMIT, each a child of the caller's span,
// each statement of an Atomic, and each query of a pgx batch (Querier.SendBatch).
func TestOtelpgxSpanPerStatement(t *testing.T) {
	t.Parallel()
	tp, rec, ctx, root := newTracing(t)
	var logged strings.Builder
	e := newEngine(t, piccolo.PostgresConfig{
		Configure: func(c *pgxpool.Config) {
			c.ConnConfig.Tracer = otelpgx.NewTracer(otelpgx.WithTracerProvider(tp), otelpgx.WithFullSQLInSpanName(), otelpgx.WithQuerySpanNamePrefix())
		},
		LogQueries: true, Logger: newTextLogger(&logged),
	})
	mustExec(t, context.Background(), e, "CREATE TABLE t (v int)")
	// Twice: the first pass describes the INSERTs (in the pipeline of
	// BEGIN and SAVEPOINT), the second sends them in it (the engine's
	// description cache; roundtrip_test.go counts those round trips).
	for range 2 {
		if err := tracedWork(ctx, t, e); err != nil {
			t.Fatal(err)
		}
	}
	// pgx batches, Atomic's and the Querier's, report each queued query.
	if err := e.Atomic().Add(piccolo.Raw("INSERT INTO t VALUES (3)"), piccolo.Raw("INSERT INTO t VALUES (4)")).Run(ctx); err != nil {
		t.Fatal(err)
	}
	b := &pgx.Batch{}
	b.Queue("SELECT 5")
	b.Queue("SELECT 6")
	if err := e.Querier().SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	root.End()
	var batched []string
	for _, s := range rec.Ended() {
		if sql, ok := strings.CutPrefix(s.Name(), "batch query "); ok {
			batched = append(batched, sql)
		}
	}
	// The Querier's pgx batch reports each queued query; an Atomic's
	// statements go through the engine's own pipeline (or alone, the first
	// time), each a query span of its own (checked below).
	if want := []string{"SELECT 5", "SELECT 6"}; !slices.Equal(batched, want) {
		t.Errorf("batch query spans %q, want %q", batched, want)
	}
	got, parents := statementSpans(rec, root)
	wants := []string{"BEGIN", "INSERT INTO t VALUES (1)", `SAVEPOINT "piccolo nested 1"`, "INSERT INTO t VALUES (2)",
		`RELEASE SAVEPOINT "piccolo nested 1"`, "DECLARE", "FETCH FORWARD 10", "CLOSE", "COMMIT"}
	for _, sql := range []string{"INSERT INTO t VALUES (3)", "INSERT INTO t VALUES (4)"} {
		if !slices.Contains(got, sql) {
			t.Errorf("the Atomic's %s has no span; spans: %q", sql, got)
		}
	}
	i := 0
	for pass := range 2 {
		for _, want := range wants {
			j := slices.IndexFunc(got[i:], func(s string) bool { return strings.HasPrefix(s, want) })
			if j < 0 {
				t.Fatalf("pass %d: no span %q after %q; spans: %q", pass+1, want, got[:i], got)
			}
			i += j + 1
			if parents[i-1] != root.SpanContext().SpanID() {
				t.Errorf("span %q is not a child of the caller's span", got[i-1])
			}
		}
	}
	if !strings.Contains(logged.String(), "FETCH FORWARD 10") {
		t.Error("the engine's logging stopped beside otelpgx")
	}
}

// tracedWork runs a transaction with a statement, a savepoint block of one
// statement and a cursor read.
func tracedWork(ctx context.Context, t *testing.T, e *piccolo.PostgresEngine) error {
	return e.Transaction(ctx, func(ctx context.Context) error {
		mustExec(t, ctx, e, "INSERT INTO t VALUES (1)") // rides with BEGIN
		err := e.Transaction(ctx, func(ctx context.Context) error {
			mustExec(t, ctx, e, "INSERT INTO t VALUES (2)") // rides with SAVEPOINT
			return nil
		}, piccolo.Nesting(piccolo.NestSavepoint))
		if err != nil {
			return err
		}
		b, err := e.Batch(ctx, piccolo.Raw("SELECT v FROM t"), piccolo.BatchSize(10))
		if err != nil {
			return err
		}
		if _, err := b.Next(ctx); err != nil {
			return err
		}
		return b.Close(ctx)
	})
}

// With piccolootel's TxTracer beside otelpgx, every statement span is a
// child of the span of the block it ran in: BEGIN and the first statement
// of the root's, SAVEPOINT and what ran inside of the savepoint block's,
// and the statements that end a block (ROLLBACK TO, COMMIT) of the block
// they end.
func TestStatementSpansAreChildrenOfTheirBlock(t *testing.T) {
	t.Parallel()
	tp, rec, ctx, root := newTracing(t)
	e := newEngine(t, piccolo.PostgresConfig{
		Tracer:   otelpgx.NewTracer(otelpgx.WithTracerProvider(tp), otelpgx.WithFullSQLInSpanName(), otelpgx.WithQuerySpanNamePrefix()),
		TxTracer: piccolootel.NewTxTracer(piccolootel.WithTracerProvider(tp)),
	})
	errUndo := errors.New("undo")
	err := e.Transaction(ctx, func(ctx context.Context) error {
		mustExec(t, ctx, e, "SELECT 1")
		_ = e.Transaction(ctx, func(ctx context.Context) error {
			mustExec(t, ctx, e, "SELECT 2")
			return errUndo
		}, piccolo.Nesting(piccolo.NestSavepoint))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	root.End()
	names := map[trace.SpanID]string{}
	for _, s := range rec.Ended() {
		names[s.SpanContext().SpanID()] = s.Name()
	}
	var got []string
	for _, s := range rec.Ended() {
		if sql, ok := strings.CutPrefix(s.Name(), "query "); ok {
			got = append(got, strings.Fields(sql)[0]+" in "+names[s.Parent().SpanID()])
		}
	}
	want := []string{"BEGIN in transaction", "SELECT in transaction",
		"SAVEPOINT in transaction savepoint block", "SELECT in transaction savepoint block",
		"ROLLBACK in transaction savepoint block", "COMMIT in transaction"}
	if !slices.Equal(got, want) {
		t.Errorf("statement spans\n%q\nwant\n%q", got, want)
	}
}
