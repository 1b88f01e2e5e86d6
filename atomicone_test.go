package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
)

// An Atomic sent as one pipeline (BEGIN, its statements and COMMIT) whose
// COMMIT the server refuses (a deferred constraint) returns
// ErrCommitRolledBack with the server's error, commits nothing, and costs
// that one round trip: the transaction is already over, nothing is left
// to roll back.
func TestAtomicInOneCommitRefused(t *testing.T) {
	t.Parallel()
	e, parent, counter := roundTripEngine(t, piccolo.PostgresConfig{})
	child := strings.TrimSuffix(parent, `"`) + `_child"`
	ctx := context.Background()
	if err := e.RunDDL(ctx, "CREATE TABLE "+child+" (pid int REFERENCES "+parent+"(id) DEFERRABLE INITIALLY DEFERRED)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.RunDDL(context.Background(), "DROP TABLE "+child) })
	for run := range 2 { // the first run describes the statement
		counter.Reset()
		err := e.Atomic().Add(
			piccolo.Raw("INSERT INTO "+child+" VALUES ($1)", 424242),
			piccolo.Raw("INSERT INTO "+child+" VALUES ($1)", 424243),
		).Run(ctx)
		var pgErr *pgconn.PgError
		var ae *piccolo.AtomicError
		if !errors.Is(err, piccolo.ErrCommitRolledBack) || !errors.As(err, &pgErr) || pgErr.Code != "23503" || errors.As(err, &ae) {
			t.Fatalf("run %d: deferred FK violation at commit: %v, want ErrCommitRolledBack with 23503", run, err)
		}
		if n := counter.Count(); run == 1 && n != 1 {
			t.Errorf("run %d: %d round trips, want 1", run, n)
		}
	}
	if n := scalar[int64](t, ctx, e, "SELECT count(*) FROM "+child); n != 0 {
		t.Fatalf("%d rows committed", n)
	}
	assertNoBorrowed(t, e)
}

// An Atomic sent as one pipeline whose connection dies once it was
// written (COMMIT included) returns ErrAmbiguousCommit: the server may
// have committed, and here it did.
func TestAtomicInOneConnectionLostAfterCommitSent(t *testing.T) {
	t.Parallel()
	e, direct, table, armCommit, cut := commitCutEngine(t)
	ctx := context.Background()
	atomicOf := func(names ...string) *piccolo.Atomic {
		a := e.Atomic()
		for _, n := range names {
			a.Add(piccolo.Raw("INSERT INTO "+table+" (name) VALUES ($1)", n))
		}
		return a
	}
	if err := atomicOf("warm 1", "warm 2").Run(ctx); err != nil { // describes the statement
		t.Fatal(err)
	}
	armCommit()
	err := atomicOf("lost 1", "lost 2").Run(ctx)
	select {
	case <-cut:
	default:
		t.Fatalf("COMMIT never went through the wrapper (err %v)", err)
	}
	if !errors.Is(err, piccolo.ErrAmbiguousCommit) || errors.Is(err, piccolo.ErrCommitRolledBack) || piccolo.IsRetryable(err) {
		t.Fatalf("connection lost after the pipeline with COMMIT was sent: %v, want ErrAmbiguousCommit alone", err)
	}
	eventually(t, "the ambiguous commit's rows", func() error {
		if got := fmt.Sprint(names(t, direct, table)); got != "[warm 1 warm 2 lost 1 lost 2]" {
			return fmt.Errorf("rows %s", got)
		}
		return nil
	})
	faultStillWorks(t, e, table)
}

// Statements sent in one pipeline are logged one by one, in order: an
// Atomic's BEGIN, each statement with its arguments, and COMMIT; a Batch's
// BEGIN, DECLARE, FETCHes and COMMIT.
func TestLogQueriesCoversPipelinedStatements(t *testing.T) {
	t.Parallel()
	e, logs := loggedEngine(t)
	table := newTable(t, e)
	ctx := context.Background()
	for run := range 2 { // the second run goes as one pipeline
		a := e.Atomic()
		for i := range 3 {
			a.Add(piccolo.Raw("INSERT INTO "+table+" (name) VALUES ($1)", fmt.Sprintf("piped-%d-%d", run, i)))
		}
		if err := a.Run(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		b, err := e.Batch(ctx, piccolo.Raw("SELECT name FROM "+table+" ORDER BY id"), piccolo.BatchSize(4))
		if err != nil {
			t.Fatal(err)
		}
		for _, err := range b.All(ctx) {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	out := logs.String()
	at := strings.Index(out, "piped-1-0")
	if at < 0 {
		t.Fatalf("the pipelined Atomic's statements are not logged:\n%s", out)
	}
	var order []string
	for _, want := range []string{"BEGIN", "piped-1-0", "piped-1-1", "piped-1-2", "COMMIT", "BEGIN", "DECLARE", "FETCH FORWARD 4", "FETCH FORWARD 4", "COMMIT"} {
		i := strings.Index(out[at:], want)
		if want == "BEGIN" && len(order) == 0 {
			i = strings.LastIndex(out[:at], want) - at
		}
		if i == -1 || i < -at {
			t.Fatalf("log has no %q after %v:\n%s", want, order, out)
		}
		order = append(order, want)
		at += i + len(want)
	}
}

// Rule: under WithReadYourWrites an Atomic sent as one pipeline (its
// COMMIT followed by the read of the WAL position) ends as without the
// context: a COMMIT the server refuses is ErrCommitRolledBack, a
// connection lost once COMMIT was sent is ErrAmbiguousCommit, and neither
// moves ReadAfter; a committed one raises it.
func TestAtomicInOneReadYourWritesKeepsCommitOutcomes(t *testing.T) {
	t.Parallel()
	e, direct, table, armCommit, cut := commitCutEngine(t)
	child := strings.TrimSuffix(table, `"`) + `_child"`
	ctx := context.Background()
	if err := direct.RunDDL(ctx, "CREATE TABLE "+child+" (pid int REFERENCES "+table+"(id) DEFERRABLE INITIALLY DEFERRED)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = direct.RunDDL(context.Background(), "DROP TABLE "+child) })
	rctx := piccolo.WithReadYourWrites(ctx)
	for run := range 2 { // the first run describes the statements
		if err := e.Atomic().Add(piccolo.Raw("INSERT INTO "+table+" (name) VALUES ($1)", fmt.Sprint("warm ", run))).Run(rctx); err != nil {
			t.Fatal(err)
		}
		err := e.Atomic().Add(piccolo.Raw("INSERT INTO "+child+" VALUES ($1)", 424242)).Run(rctx)
		var pgErr *pgconn.PgError
		if !errors.Is(err, piccolo.ErrCommitRolledBack) || !errors.As(err, &pgErr) || pgErr.Code != "23503" {
			t.Fatalf("run %d: deferred FK violation at commit: %v, want ErrCommitRolledBack with 23503", run, err)
		}
	}
	committed := piccolo.ReadAfter(rctx)
	if committed == 0 {
		t.Fatal("a committed Atomic recorded no position")
	}
	armCommit()
	err := e.Atomic().Add(piccolo.Raw("INSERT INTO "+table+" (name) VALUES ($1)", "lost")).Run(rctx)
	<-cut
	if !errors.Is(err, piccolo.ErrAmbiguousCommit) || errors.Is(err, piccolo.ErrCommitRolledBack) {
		t.Fatalf("connection lost after COMMIT was sent: %v, want ErrAmbiguousCommit alone", err)
	}
	if got := piccolo.ReadAfter(rctx); got != committed {
		t.Fatalf("a refused or ambiguous COMMIT moved the position from %v to %v", committed, got)
	}
	faultStillWorks(t, e, table)
}
