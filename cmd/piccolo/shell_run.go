package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/internal/sqltext"
)

// timed runs fn, printing its error and, with \timing on, its duration.
func (s *session) timed(fn func() error) {
	start := time.Now()
	err := fn()
	if s.timing {
		fmt.Fprintf(s.out, "Time: %.3f ms\n", float64(time.Since(start).Microseconds())/1000)
	}
	if err != nil {
		s.fail(err)
	}
}

// fail prints err, PostgreSQL's errors the way psql does, and notes it
// for ON_ERROR_STOP.
func (s *session) fail(err error) {
	s.failed = true
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		fmt.Fprintln(s.errOut, s.st.red("ERROR: "+err.Error()))
		return
	}
	fmt.Fprintln(s.errOut, s.st.red(fmt.Sprintf("ERROR: %s (SQLSTATE %s)", pgErr.Message, pgErr.Code)))
	if pgErr.Detail != "" {
		fmt.Fprintln(s.errOut, "DETAIL: "+pgErr.Detail)
	}
	if pgErr.Hint != "" {
		fmt.Fprintln(s.errOut, "HINT: "+pgErr.Hint)
	}
}

// queryContext is the context statements run with: the transaction's, if any.
func (s *session) queryContext(ctx context.Context) context.Context {
	if s.txCtx != nil {
		return s.txCtx
	}
	return ctx
}

// statement runs one SQL statement. Transaction control goes to the
// engine's transactions (see txStatement); everything else runs on the
// session's connection, inside the transaction if one is open.
func (s *session) statement(ctx context.Context, sql string) error {
	if sqltext.Control(sql) != sqltext.NoTxControl {
		return s.txStatement(ctx, sql)
	}
	return s.run(ctx, sql)
}

// run sends sql and prints what it returned as psql does: its rows, and
// the command tag of a statement that is not a query (INSERT ...
// RETURNING shows both).
func (s *session) run(ctx context.Context, sql string) error {
	res := &resultTable{}
	err := s.cancellable(ctx, func() error {
		return s.engine.QueryFunc(s.queryContext(ctx), piccolo.Querystring{SQL: sql}, res.scan)
	})
	s.noteOutcome(err)
	if err != nil {
		return err
	}
	tag := s.conn.lastTag()
	verb, _, _ := strings.Cut(tag.String(), " ")
	query := verb == "SELECT" || verb == "FETCH" || verb == "SHOW" || verb == "EXPLAIN"
	if query || len(res.rows) > 0 {
		s.writeResult(res)
	}
	if !query {
		if len(res.rows) > 0 {
			fmt.Fprintln(s.out)
		}
		fmt.Fprintln(s.out, tag.String())
	}
	return nil
}

// writeResult prints a result as a table, or expanded (\x).
func (s *session) writeResult(res *resultTable) {
	if s.expanded {
		writeExpanded(s.out, res, s.st)
		return
	}
	writeTable(s.out, res, s.st)
}

// cancellable runs fn, a statement on the session's connection. A Ctrl-C
// meanwhile sends the server a CancelRequest: the statement fails with
// 57014 while the connection, the session state and the transaction (now
// failed) stay, as in psql. (Cancelling fn's context instead would make
// pgx close the connection.)
func (s *session) cancellable(ctx context.Context, fn func() error) error {
	if s.interrupts == nil {
		return fn()
	}
	for drained := false; !drained; { // a Ctrl-C from before this statement is not for it
		select {
		case <-s.interrupts:
		default:
			drained = true
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-s.interrupts:
				if err := s.conn.cancel(ctx); err != nil {
					fmt.Fprintln(s.errOut, "Could not cancel the statement: "+err.Error())
				} else {
					fmt.Fprintln(s.errOut, "Cancel request sent")
				}
			case <-done:
				return
			}
		}
	})
	defer wg.Wait()
	defer close(done)
	return fn()
}
