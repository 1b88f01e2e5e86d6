package piccolo_test

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/internal/txmodel"
)

var (
	modelPrograms = flag.Int("model.programs", 0, "programs TestModel and TestModelConcurrent run (0: the CI default)")
	modelSeed     = flag.Uint64("model.seed", 0, "seed of the first program (0: from the clock); program i uses seed+i")
)

// modelConfig shapes TestModel's programs.
var modelConfig = txmodel.Config{Ops: 14, Depth: 3}

// TestModel runs random programs of engine operations against PostgreSQL
// and against txmodel, the executable statement of the engine's semantics,
// and fails on the first difference: a call's error class, Committed /
// RolledBack / TransactionExists after it, a batch's rows, the cursors
// open, the hooks that ran, the committed rows, connections left borrowed.
// A failure prints its seed and the program, shrunk; replay it with
// -run TestModel$ -model.seed=S -model.programs=1.
func TestModel(t *testing.T) {
	h := newModelHarness(t)
	seed, n := modelSeeds(t, 2000)
	for i := range n {
		s := seed + uint64(i)
		p := txmodel.Generate(rand.New(rand.NewPCG(s, 0)), modelConfig)
		if diff := h.check(p); diff != "" {
			p, diff = h.shrink(p, diff)
			t.Fatalf("seed %d (replay: -run 'TestModel$' -model.seed=%d -model.programs=1): %s\nprogram (shrunk):\n%s", s, s, diff, p)
		}
	}
}

// modelSeeds returns the first seed and how many programs to run.
func modelSeeds(t *testing.T, ciDefault int) (uint64, int) {
	seed, n := *modelSeed, *modelPrograms
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	if n == 0 {
		n = ciDefault
		if testing.Short() {
			n /= 10
		}
	}
	t.Logf("seed %d, %d programs", seed, n)
	return seed, n
}

// modelHarness runs programs on one engine and table.
type modelHarness struct {
	t      *testing.T
	e      *piccolo.PostgresEngine
	table  string
	progs  atomic.Int64
	blocks *balanceTracer // every block the engine opens, reported ended once
}

func newModelHarness(t *testing.T) *modelHarness {
	blocks := &balanceTracer{open: map[int]bool{}}
	e := newEngine(t, true, piccolo.PostgresConfig{
		TxTracer:       blocks,
		MaxConns:       16,
		AcquireTimeout: 5 * time.Second, // a leaked connection fails, never hangs
		Logger:         slog.New(slog.DiscardHandler),
	})
	table := fmt.Sprintf(`"model_rows_%d"`, tableSeq.Add(1))
	if err := e.RunDDL(context.Background(), "CREATE TABLE "+table+" (prog int, id int, PRIMARY KEY (prog, id))"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.RunDDL(context.Background(), "DROP TABLE "+table) })
	return &modelHarness{t: t, e: e, table: table, blocks: blocks}
}

// check runs p on the engine and the model; it returns "" when they agree.
func (h *modelHarness) check(p txmodel.Program) string {
	want := txmodel.Run(p)
	got, err := h.run(p)
	if err != nil {
		return err.Error()
	}
	for i := range max(len(want.Results), len(got.Results)) {
		switch {
		case i >= len(got.Results):
			return fmt.Sprintf("the engine stopped before op %s", want.Results[i].Path)
		case i >= len(want.Results):
			return fmt.Sprintf("the engine ran op %s, which the model did not", got.Results[i].Path)
		}
		if d := txmodel.Diff(want.Results[i], got.Results[i]); d != "" {
			return fmt.Sprintf("op %s (%s): %s", want.Results[i].Path, opLine(p, want.Results[i].Path), d)
		}
	}
	if !slices.Equal(want.Committed, got.Committed) {
		return fmt.Sprintf("committed rows: want %v, got %v", want.Committed, got.Committed)
	}
	return ""
}

// run runs p on the engine.
func (h *modelHarness) run(p txmodel.Program) (txmodel.Outcome, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := h.newRun(ctx, &hookLog{})
	if err != nil {
		return txmodel.Outcome{}, err
	}
	r.ops(p, &eframe{ctx: ctx, cancel: func() {}}, "")
	for _, b := range r.bats { // the program's deferred Close
		_ = b.Close(ctx)
	}
	for _, rows := range r.rows {
		rows.Close()
	}
	rows, err := r.committedRows(ctx)
	if err != nil {
		return txmodel.Outcome{}, fmt.Errorf("read committed rows: %w", err)
	}
	if err := h.settled(); err != nil {
		return txmodel.Outcome{}, err
	}
	return txmodel.Outcome{Results: r.res, Committed: rows}, nil
}

// newRun starts a program: its number, and its row 0 committed.
func (h *modelHarness) newRun(ctx context.Context, hooks *hookLog) (*programRun, error) {
	r := newProgramRun(h.e, h.table, int(h.progs.Add(1)), hooks)
	if _, err := h.e.Exec(ctx, r.insertQ(0)); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	return r, nil
}

// waitReturned waits up to 2s for every connection to be back in the pool
// (a dead connection counts as borrowed until the pool destroys it).
func waitReturned(e *piccolo.PostgresEngine) error {
	deadline := time.Now().Add(2 * time.Second)
	for e.Stat().AcquiredConns() != 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d connections still borrowed after the program", e.Stat().AcquiredConns())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// settled waits for every connection to be back (waitReturned) and checks
// that the TxTracer was told of the end of every block it was told of.
func (h *modelHarness) settled() error {
	if err := waitReturned(h.e); err != nil {
		return err
	}
	return h.blocks.unbalanced()
}

// shrink drops operations from the failing program p while it still fails.
func (h *modelHarness) shrink(p txmodel.Program, diff string) (txmodel.Program, string) {
	for progress := true; progress; {
		progress = false
		for _, q := range txmodel.Smaller(p) {
			if d := h.check(q); d != "" {
				p, diff, progress = q, d, true
				break
			}
		}
	}
	return p, diff
}

// opLine returns the printed line of the operation at path.
func opLine(p txmodel.Program, path string) string {
	op, ok := txmodel.At(p, strings.TrimSuffix(path, ".end"))
	if !ok {
		return "?"
	}
	op.Body = nil
	return strings.TrimSpace(strings.SplitN(txmodel.Program{op}.String(), "\n", 2)[0])
}
