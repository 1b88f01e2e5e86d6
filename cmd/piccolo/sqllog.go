package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// sqlPrinter is a slog.Handler for the engine's query log (LogQueries): it
// keeps each statement as one compact line and prints them on flush, so
// that a step shows the SQL that ran before its results. Repeats of a
// statement (a cursor's FETCH) collapse into one line with a count; in
// summary mode, for steps with many goroutines, repeats collapse even when
// other statements ran in between.
//
// Attributes and groups added with WithAttrs and WithGroup are ignored:
// the printer reads only the attributes of each record.
type sqlPrinter struct {
	run     context.Context // the command's; its end (Ctrl-C) explains the failures that follow
	mu      sync.Mutex
	w       io.Writer
	st      style
	summary bool
	lines   []sqlLine
}

// sqlLine is a printed statement and how many times it ran.
type sqlLine struct {
	text  string
	count int
	err   bool
}

// newSQLPrinter prints statements to w when flushed. Once run ends (the
// user pressed Ctrl-C), statements that fail say they were interrupted.
func newSQLPrinter(run context.Context, w io.Writer, st style) *sqlPrinter {
	return &sqlPrinter{run: run, w: w, st: st}
}

// Enabled implements slog.Handler.
func (p *sqlPrinter) Enabled(_ context.Context, level slog.Level) bool {
	return level >= slog.LevelInfo
}

// Handle implements slog.Handler.
func (p *sqlPrinter) Handle(_ context.Context, r slog.Record) error {
	var sql, errText string
	var args []any
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "sql":
			sql = a.Value.String()
		case "args":
			args, _ = a.Value.Any().([]any)
		case "error":
			errText = a.Value.String()
		}
		return true
	})
	line := sqlLine{count: 1}
	if sql == "" {
		// Not a statement: a warning of the engine's.
		line.text = r.Level.String() + ": " + r.Message
		r.Attrs(func(a slog.Attr) bool {
			line.text += " " + a.String()
			return true
		})
	} else {
		line.text = compactSQL(sql) + formatArgs(args)
	}
	switch {
	case errText == "":
	case p.run.Err() != nil && strings.HasPrefix(sql, "ROLLBACK"):
		// pgx closed the connection when the context ended, and the server
		// rolls back the transaction of a closed connection.
		line.text += "  -- interrupted: the connection was closed instead, which rolls the transaction back"
	case p.run.Err() != nil:
		line.text += "  -- interrupted"
	default:
		line.text += "  -- failed: " + errText
		line.err = true
	}
	p.add(line)
	return nil
}

// add holds line, counting it as a repeat where it is one.
func (p *sqlPrinter) add(line sqlLine) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.summary {
		for i := range p.lines {
			if p.lines[i].text == line.text {
				p.lines[i].count++
				return
			}
		}
	} else if n := len(p.lines); n > 0 && p.lines[n-1].text == line.text {
		p.lines[n-1].count++
		return
	}
	p.lines = append(p.lines, line)
}

// WithAttrs implements slog.Handler.
func (p *sqlPrinter) WithAttrs([]slog.Attr) slog.Handler { return p }

// WithGroup implements slog.Handler.
func (p *sqlPrinter) WithGroup(string) slog.Handler { return p }

// setSummary switches summary mode on or off, printing what is held first.
func (p *sqlPrinter) setSummary(on bool) {
	p.flush()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.summary = on
}

// flush prints the statements held and forgets them.
func (p *sqlPrinter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		text := p.st.cyan(l.text)
		if l.err {
			text = p.st.red(l.text)
		}
		if l.count > 1 {
			text += p.st.dim(fmt.Sprintf("  (×%d)", l.count))
		}
		fmt.Fprintf(p.w, "  %s %s\n", p.st.dim("sql>"), text)
	}
	p.lines = nil
}

// discard forgets the statements held without printing them.
func (p *sqlPrinter) discard() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines = nil
}

// compactSQL puts a statement on one line.
func compactSQL(sql string) string {
	return strings.Join(strings.Fields(sql), " ")
}

// formatArgs renders a statement's arguments as an SQL comment. pgx's
// query options among them (an exec mode) are not arguments and are left out.
func formatArgs(args []any) string {
	var parts []string
	for _, a := range args {
		var s string
		switch v := a.(type) {
		case pgx.QueryExecMode:
			continue
		case string:
			s = "'" + strings.ReplaceAll(v, "'", "''") + "'"
		case time.Time:
			s = "'" + v.Format("2006-01-02 15:04:05Z07:00") + "'"
		default:
			s = fmt.Sprint(v)
		}
		const maxArg = 40
		if r := []rune(s); len(r) > maxArg {
			s = string(r[:maxArg]) + "…"
		}
		parts = append(parts, fmt.Sprintf("$%d=%s", len(parts)+1, s))
	}
	if len(parts) == 0 {
		return ""
	}
	return "  -- " + strings.Join(parts, ", ")
}
