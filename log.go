package piccolo

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// queryLogger logs the statements pgx sends for the engine. As a pgx tracer
// it sees every statement on every connection, BEGIN and FETCH included,
// without the engine having to remember to log at each call site.
type queryLogger struct {
	engine *PostgresEngine
}

type traceKey struct{}

// traceStart carries what pgx tells only at the start of a statement to its end.
type traceStart struct {
	id    uint64
	start time.Time
	sql   string
	args  []any
}

// TraceQueryStart implements pgx.QueryTracer.
func (l *queryLogger) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, traceKey{}, traceStart{
		id: l.engine.queryID.Add(1), start: time.Now(), sql: data.SQL, args: statementArgs(data.Args),
	})
}

// TraceQueryEnd implements pgx.QueryTracer.
func (l *queryLogger) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	ts, _ := ctx.Value(traceKey{}).(traceStart)
	l.engine.logStatement(ctx, ts.id, ts.sql, ts.args, time.Since(ts.start), data.CommandTag.String(), data.Err)
}

// TraceBatchStart implements pgx.BatchTracer.
func (l *queryLogger) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return context.WithValue(ctx, traceKey{}, traceStart{start: time.Now()})
}

// TraceBatchQuery implements pgx.BatchTracer. The duration of each queued
// statement is measured from the start of the batch.
func (l *queryLogger) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	ts, _ := ctx.Value(traceKey{}).(traceStart)
	l.engine.logStatement(ctx, l.engine.queryID.Add(1), data.SQL, data.Args, time.Since(ts.start), data.CommandTag.String(), data.Err)
}

// TraceBatchEnd implements pgx.BatchTracer.
func (l *queryLogger) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// TraceCopyFromStart implements pgx.CopyFromTracer.
func (l *queryLogger) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceCopyFromStartData) context.Context {
	cols := make([]string, len(data.ColumnNames))
	for i, c := range data.ColumnNames {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	sql := "COPY " + data.TableName.Sanitize() + " (" + strings.Join(cols, ", ") + ") FROM STDIN"
	return context.WithValue(ctx, traceKey{}, traceStart{id: l.engine.queryID.Add(1), start: time.Now(), sql: sql})
}

// TraceCopyFromEnd implements pgx.CopyFromTracer.
func (l *queryLogger) TraceCopyFromEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceCopyFromEndData) {
	ts, _ := ctx.Value(traceKey{}).(traceStart)
	l.engine.logStatement(ctx, ts.id, ts.sql, nil, time.Since(ts.start), data.CommandTag.String(), data.Err)
}

// statementArgs drops the pgx options (such as a QueryExecMode) that pgx
// passes to tracers with a statement's arguments.
func statementArgs(args []any) []any {
	for len(args) > 0 {
		switch args[0].(type) {
		case pgx.QueryExecMode, pgx.QueryRewriter:
			args = args[1:]
			continue
		}
		break
	}
	return args
}

// maxLoggedArg bounds what the log shows of one argument: a 100 MB upload
// must not become a 100 MB log line.
const maxLoggedArg = 256

// loggedArgs is a statement's arguments as the log shows them: long
// strings and byte slices cut to maxLoggedArg bytes, with their length.
type loggedArgs []any

// LogValue implements slog.LogValuer; it runs only when the record is logged.
func (a loggedArgs) LogValue() slog.Value {
	out := make([]any, len(a))
	for i, v := range a {
		switch v := v.(type) {
		case string:
			if len(v) > maxLoggedArg {
				out[i] = fmt.Sprintf("%s… (%d bytes)", v[:maxLoggedArg], len(v))
				continue
			}
		case []byte:
			if len(v) > maxLoggedArg {
				out[i] = fmt.Sprintf("%x… (%d bytes)", v[:maxLoggedArg/2], len(v))
				continue
			}
		}
		out[i] = v
	}
	return slog.AnyValue(out)
}

// logStatement logs one statement the engine sent.
func (e *PostgresEngine) logStatement(ctx context.Context, id uint64, sql string, args []any, d time.Duration, tag string, err error) {
	if !e.logQueries && !e.logResponses {
		return
	}
	attrs := make([]slog.Attr, 0, 6)
	attrs = append(attrs, slog.Uint64("query_id", id))
	if e.logQueries {
		attrs = append(attrs, slog.String("sql", sql), slog.Any("args", loggedArgs(args)))
	}
	attrs = append(attrs, slog.Duration("duration", d))
	if e.logResponses && tag != "" {
		attrs = append(attrs, slog.String("tag", tag))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	e.logger.LogAttrs(ctx, slog.LevelInfo, "piccolo: query", attrs...)
}

// logScan wraps scan so that, with LogResponses on, the rows it sees are
// logged when the returned function is called; otherwise it changes nothing.
func (e *PostgresEngine) logScan(scan func(pgx.Rows) error) (func(pgx.Rows) error, func(context.Context)) {
	if !e.logResponses || scan == nil {
		return scan, func(context.Context) {}
	}
	seen := &mapRows{}
	wrapped := func(rows pgx.Rows) error {
		if err := seen.scan(rows); err != nil {
			return err
		}
		return scan(rows)
	}
	return wrapped, func(ctx context.Context) {
		e.logger.LogAttrs(ctx, slog.LevelInfo, "piccolo: response", slog.Int("rows", len(seen.out)), slog.Any("data", seen.out))
	}
}
