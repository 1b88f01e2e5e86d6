package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestSQLPrinter(t *testing.T) {
	t.Parallel()
	query := func(log *slog.Logger, sql string, args []any, err error) {
		attrs := []any{"query_id", 1, "sql", sql, "args", args, "duration", time.Millisecond}
		if err != nil {
			attrs = append(attrs, "error", err.Error())
		}
		log.Info("piccolo: query", attrs...)
	}
	tests := []struct {
		name        string
		summary     bool
		interrupted bool // the command's context has ended (Ctrl-C)
		log         func(*slog.Logger)
		want        string
	}{
		{
			name: "compact, with arguments",
			log: func(l *slog.Logger) {
				query(l, "SELECT *\n\tFROM band\n WHERE name = $1 AND at = $2", []any{"it's", time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}, nil)
			},
			want: "  sql> SELECT * FROM band WHERE name = $1 AND at = $2  -- $1='it''s', $2='2025-01-02 03:04:05Z'\n",
		},
		{
			name: "exec modes are not arguments",
			log: func(l *slog.Logger) {
				query(l, "DECLARE c CURSOR FOR SELECT $1", []any{pgx.QueryExecModeDescribeExec, 7}, nil)
			},
			want: "  sql> DECLARE c CURSOR FOR SELECT $1  -- $1=7\n",
		},
		{
			name: "repeats collapse",
			log: func(l *slog.Logger) {
				query(l, "BEGIN", nil, nil)
				for range 3 {
					query(l, "FETCH 10 FROM c", nil, nil)
				}
				query(l, "COMMIT", nil, nil)
				query(l, "BEGIN", nil, nil)
			},
			want: "  sql> BEGIN\n  sql> FETCH 10 FROM c  (×3)\n  sql> COMMIT\n  sql> BEGIN\n",
		},
		{
			name:    "summary collapses interleaved repeats",
			summary: true,
			log: func(l *slog.Logger) {
				for range 2 {
					query(l, "INSERT", nil, nil)
					query(l, "SELECT", nil, nil)
				}
			},
			want: "  sql> INSERT  (×2)\n  sql> SELECT  (×2)\n",
		},
		{
			name: "errors and warnings",
			log: func(l *slog.Logger) {
				query(l, "SELECT x", nil, errors.New("ERROR: column x does not exist"))
				l.Warn("piccolo: something", "k", "v")
				l.Debug("not shown")
			},
			want: "  sql> SELECT x  -- failed: ERROR: column x does not exist\n  sql> WARN: piccolo: something k=v\n",
		},
		{
			name:        "failures after Ctrl-C say they were interrupted",
			interrupted: true,
			log: func(l *slog.Logger) {
				query(l, "FETCH 10 FROM c", nil, errors.New("context canceled"))
				query(l, "ROLLBACK", nil, errors.New("conn closed"))
			},
			want: "  sql> FETCH 10 FROM c  -- interrupted\n" +
				"  sql> ROLLBACK  -- interrupted: the connection was closed instead, which rolls the transaction back\n",
		},
		{
			name: "long arguments are cut",
			log: func(l *slog.Logger) {
				query(l, "SELECT $1", []any{string(bytes.Repeat([]byte("a"), 50))}, nil)
			},
			want: "  sql> SELECT $1  -- $1='aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa…\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tt.interrupted {
				cancel()
			}
			p := newSQLPrinter(ctx, &b, style{})
			p.setSummary(tt.summary)
			tt.log(slog.New(p).With("ignored", true))
			if b.Len() != 0 {
				t.Errorf("printed before flush: %q", b.String())
			}
			p.flush()
			if got := b.String(); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
			p.flush()
			if got := b.String(); got != tt.want {
				t.Errorf("a second flush printed more:\n%s", got)
			}
		})
	}
}
