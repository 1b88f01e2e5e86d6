package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
)

// blockTracer records what a TxTracer is told, and, as a pgx tracer, the
// block each statement ran in (the TxTracer's context value).
type blockTracer struct {
	mu     sync.Mutex
	next   int
	events []string
	stmts  []string
}

type blockKey struct{}

func (b *blockTracer) log(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events = append(b.events, fmt.Sprintf(format, args...))
}

func (b *blockTracer) TraceTxStart(ctx context.Context, data piccolo.TraceTxStartData) context.Context {
	b.mu.Lock()
	b.next++
	id := fmt.Sprintf("%s#%d", data.Kind, b.next)
	b.mu.Unlock()
	b.log("start %s attempt %d/%d", id, data.Attempt, data.MaxAttempts)
	return context.WithValue(ctx, blockKey{}, id)
}

func (b *blockTracer) TraceTxEnd(ctx context.Context, data piccolo.TraceTxEndData) {
	why := ""
	if data.Err != nil {
		why = ": " + data.Err.Error()
	}
	b.log("end %s %s%s", ctx.Value(blockKey{}), data.Outcome, why)
}

func (b *blockTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stmts = append(b.stmts, fmt.Sprintf("%v: %s", ctx.Value(blockKey{}), strings.Fields(data.SQL)[0]))
	return ctx
}

func (b *blockTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (b *blockTracer) seen() (events, stmts []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.events), slices.Clone(b.stmts)
}

// TestTxTracerSeesEveryBlock pins what a TxTracer is told: each attempt
// under Retry is a root block of its own with its number; nested blocks
// open inside their parent's context and end before it with their
// outcome; the statements of a block, those that end it included, run
// under its context.
func TestTxTracerSeesEveryBlock(t *testing.T) {
	t.Parallel()
	bt := &blockTracer{}
	e := newEngine(t, true, piccolo.PostgresConfig{TxTracer: bt, Tracer: bt})
	ctx := context.Background()
	errInner := errors.New("inner failed")
	attempt := 0
	err := e.Transaction(ctx, func(ctx context.Context) error {
		attempt++
		if attempt < 3 {
			return &pgconn.PgError{Severity: "ERROR", Code: "40001", Message: "simulated serialization failure"}
		}
		if _, err := e.Exec(ctx, piccolo.Raw("SELECT 1")); err != nil {
			return err
		}
		err := e.Transaction(ctx, func(ctx context.Context) error {
			if _, err := e.Exec(ctx, piccolo.Raw("SELECT 2")); err != nil {
				return err
			}
			return errInner
		}, piccolo.Nesting(piccolo.NestSavepoint))
		if !errors.Is(err, errInner) {
			return fmt.Errorf("savepoint block: %w", err)
		}
		return e.Transaction(ctx, func(ctx context.Context) error { return nil })
	}, piccolo.Retry(3))
	if err != nil {
		t.Fatal(err)
	}
	events, stmts := bt.seen()
	want := []string{
		"start root#1 attempt 1/3", "end root#1 rolled back: ERROR: simulated serialization failure (SQLSTATE 40001)",
		"start root#2 attempt 2/3", "end root#2 rolled back: ERROR: simulated serialization failure (SQLSTATE 40001)",
		"start root#3 attempt 3/3",
		"start savepoint#4 attempt 1/1", "end savepoint#4 rolled back: inner failed",
		"start joined#5 attempt 1/1", "end joined#5 committed",
		"end root#3 committed",
	}
	if !slices.Equal(events, want) {
		t.Errorf("TxTracer saw\n%q\nwant\n%q", events, want)
	}
	wantStmts := []string{"root#3: BEGIN", "root#3: SELECT", "savepoint#4: SAVEPOINT", "savepoint#4: SELECT",
		"savepoint#4: ROLLBACK", "root#3: COMMIT"}
	if !slices.Equal(stmts, wantStmts) {
		t.Errorf("statements ran in blocks\n%q\nwant\n%q", stmts, wantStmts)
	}
}

// TestTxTracerSeesBlocksEndedByAnEnclosingEnd pins that a block left open
// when an enclosing block ends is reported ended, rolled back, before it.
func TestTxTracerSeesBlocksEndedByAnEnclosingEnd(t *testing.T) {
	t.Parallel()
	bt := &blockTracer{}
	e := newEngine(t, true, piccolo.PostgresConfig{TxTracer: bt})
	ctx := context.Background()
	txCtx, tx, err := e.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	spCtx, _, err := e.Begin(txCtx, piccolo.Nesting(piccolo.NestSavepoint))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Exec(spCtx, piccolo.Raw("SELECT 1")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	events, _ := bt.seen()
	want := []string{"start root#1 attempt 1/1", "start savepoint#2 attempt 1/1",
		"end savepoint#2 rolled back: an enclosing block ended while this block was open, and rolled it back",
		"end root#1 committed"}
	if !slices.Equal(events, want) {
		t.Errorf("TxTracer saw\n%q\nwant\n%q", events, want)
	}
}

// balanceTracer is a TxTracer checking that each block reported opened is
// reported ended once, and no other block is: TestModel and
// TestModelConcurrent run with it.
type balanceTracer struct {
	mu      sync.Mutex
	next    int
	open    map[int]bool // reported opened, not ended
	mistake error        // the first end reported wrongly
}

type balanceKey struct{}

func (b *balanceTracer) TraceTxStart(ctx context.Context, _ piccolo.TraceTxStartData) context.Context {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.next++
	b.open[b.next] = true
	return context.WithValue(ctx, balanceKey{}, b.next)
}

func (b *balanceTracer) TraceTxEnd(ctx context.Context, _ piccolo.TraceTxEndData) {
	b.mu.Lock()
	defer b.mu.Unlock()
	id, _ := ctx.Value(balanceKey{}).(int)
	if !b.open[id] && b.mistake == nil {
		b.mistake = fmt.Errorf("TxTracer: block %d reported ended, but it is not open", id)
	}
	delete(b.open, id)
}

// unbalanced returns the first wrong end reported, or names a block
// reported opened and never ended.
func (b *balanceTracer) unbalanced() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mistake != nil {
		return b.mistake
	}
	for id := range b.open {
		return fmt.Errorf("TxTracer: block %d was reported opened, never ended (%d blocks open)", id, len(b.open))
	}
	return nil
}
