package main

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/pgtest"
)

// waitForQuery waits until a backend on dsn's database runs a statement
// LIKE sql, watched from a connection of its own.
func waitForQuery(t *testing.T, dsn, sql string) {
	t.Helper()
	watcher, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{DSN: dsn})
	if err != nil {
		t.Error(err)
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		rows, err := watcher.RunQuerystring(context.Background(), piccolo.Querystring{
			SQL:  "SELECT count(*) AS n FROM pg_stat_activity WHERE state = 'active' AND datname = current_database() AND query LIKE $1",
			Args: []any{sql},
		})
		if err == nil && rows[0]["n"] == int64(1) {
			return
		}
		time.Sleep(20 * time.Millisecond) // polling the server: nothing to wait on
	}
	t.Errorf("no backend ever ran %q", sql)
}

// TestShellCtrlCCancelsTheStatementAndKeepsTheSession: an interrupt during
// a statement cancels it on the server (57014); the connection, the
// session state and the transaction (now failed) stay, as in psql, so
// ROLLBACK and the next statements work in the same session.
func TestShellCtrlCCancelsTheStatementAndKeepsTheSession(t *testing.T) {
	t.Parallel()
	dsn := pgtest.DSN(t)
	s, out, errOut := newTestSessionOn(t, dsn)
	interrupts := make(chan struct{}, 1)
	s.interrupts = interrupts
	runSteps(t, s, out, errOut, []shellStep{
		{"CREATE TABLE cancelled (id int); SET application_name = 'kept';", "piccolo=> ", "SET", ""},
		{"BEGIN;", "piccolo*> ", "BEGIN", ""},
		{"INSERT INTO cancelled VALUES (1);", "piccolo*> ", "INSERT 0 1", ""},
	})
	pid := s.conn.pg.Load().PID()
	const sleep = "SELECT pg_sleep(30) AS in_process"
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		waitForQuery(t, dsn, sleep)
		interrupts <- struct{}{}
	}()
	start := time.Now()
	out.Reset()
	errOut.Reset()
	s.handleLine(t.Context(), sleep+";")
	<-sent
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("the cancelled statement took %v", took)
	}
	if got, want := errOut.String(), "Cancel request sent\nERROR: canceling statement due to user request (SQLSTATE 57014)\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
	if s.prompt() != "piccolo!> " {
		t.Errorf("prompt %q after the cancel, want the failed transaction's", s.prompt())
	}
	runSteps(t, s, out, errOut, []shellStep{
		{"ROLLBACK;", "piccolo=> ", "ROLLBACK", ""},
		{"SELECT count(*) AS n, current_setting('application_name') AS app, pg_backend_pid() = " +
			strconv.FormatUint(uint64(pid), 10) + " AS same FROM cancelled;", "piccolo=> ", " 0 | kept | true\n", ""},
	})
}

// TestShellStaleInterruptIsNotForTheNextStatement: a Ctrl-C that arrived
// while no statement ran cancels nothing later.
func TestShellStaleInterruptIsNotForTheNextStatement(t *testing.T) {
	t.Parallel()
	s, out, errOut := newTestSession(t)
	interrupts := make(chan struct{}, 1)
	interrupts <- struct{}{}
	s.interrupts = interrupts
	runSteps(t, s, out, errOut, []shellStep{{"SELECT pg_sleep(0.2), 'done' AS d;", "piccolo=> ", "done", ""}})
}

func TestSignalRouterGivesSIGINTToItsHolder(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancelCause(context.Background())
	r := &signalRouter{cancel: cancel}
	interrupts, release := r.take()
	for range 2 {
		if r.deliver(os.Interrupt) {
			t.Fatal("SIGINT held by the shell ended the command")
		}
	}
	if len(interrupts) != 1 || ctx.Err() != nil {
		t.Fatalf("%d interrupts queued (want 1, repeats merged), context %v", len(interrupts), ctx.Err())
	}
	release()
	if !r.deliver(os.Interrupt) || context.Cause(ctx).Error() != "interrupt signal received" {
		t.Fatalf("SIGINT after release: context cause %v", context.Cause(ctx))
	}
}
