package piccolo_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piccolo-go/piccolo/internal/txmodel"
)

// TestModelConcurrent runs two goroutines that share one transaction's
// ctx, each doing inserts, hooks and blocks, against PostgreSQL. Their
// interleaving is the scheduler's, so each goroutine is checked against
// the model run alone, without the calls refused with
// ErrNestedTransaction or ErrConnBusy (the other goroutine had a savepoint
// block open):
// every other call must return what the model says, and the committed rows
// and the hooks that ran must be those of both goroutines' models.
func TestModelConcurrent(t *testing.T) {
	h := newModelHarness(t)
	seed, n := modelSeeds(t, 1000)
	for i := range n {
		s := seed + uint64(i)
		r := rand.New(rand.NewPCG(s, 1))
		g := [2][]txmodel.Op{
			txmodel.GenerateGoroutine(r, 2+r.IntN(6), 0),
			txmodel.GenerateGoroutine(r, 2+r.IntN(6), 1000),
		}
		if diff := h.checkConcurrent(g); diff != "" {
			t.Fatalf("seed %d (replay: -run TestModelConcurrent -model.seed=%d -model.programs=1): %s\ngoroutine 1:\n%s\ngoroutine 2:\n%s",
				s, s, diff, txmodel.Program(g[0]), txmodel.Program(g[1]))
		}
	}
}

// checkConcurrent runs the goroutines' operations in one transaction and
// returns "" when every goroutine's results and the outcome agree with the
// model.
func (h *modelHarness) checkConcurrent(g [2][]txmodel.Op) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	hooks := &hookLog{}
	var runs [2]*programRun
	for i := range runs {
		r, err := h.newRun(ctx, hooks)
		if err != nil {
			return err.Error()
		}
		runs[i] = r
	}
	runs[1].prog = runs[0].prog // one program, two goroutines
	err := h.e.Transaction(ctx, func(ctx context.Context) error {
		var wg sync.WaitGroup
		for i, r := range runs {
			wg.Go(func() { r.ops(g[i], &eframe{ctx: ctx, cancel: func() {}}, "1.") })
		}
		wg.Wait()
		return nil
	})
	if err != nil {
		return fmt.Sprintf("the shared transaction: %v", err)
	}
	committed := map[int]bool{}
	var wantHooks []string
	for i, r := range runs {
		ops := txmodel.Without(g[i], r.res, txmodel.Refused)
		want := txmodel.Run(txmodel.Program{{Kind: txmodel.Tx, Body: ops}})
		got := slices.DeleteFunc(slices.Clone(r.res), txmodel.Refused)
		if d := compareGoroutine(want.Results[:len(want.Results)-1], got); d != "" {
			return fmt.Sprintf("goroutine %d: %s", i+1, d)
		}
		for _, id := range want.Committed {
			committed[id] = true
		}
		if last := want.Results[len(want.Results)-1].Hooks; last != "" {
			wantHooks = append(wantHooks, strings.Fields(last)...)
		}
	}
	rows, err := runs[0].committedRows(ctx)
	if err != nil {
		return err.Error()
	}
	if want := slices.Sorted(maps.Keys(committed)); !slices.Equal(want, rows) {
		return fmt.Sprintf("committed rows: want %v, got %v", want, rows)
	}
	slices.Sort(wantHooks)
	gotHooks := hooks.list()
	slices.Sort(gotHooks)
	if !slices.Equal(wantHooks, gotHooks) {
		return fmt.Sprintf("hooks run: want %v, got %v", wantHooks, gotHooks)
	}
	if err := h.settled(); err != nil {
		return err.Error()
	}
	return ""
}

// compareGoroutine compares one goroutine's results with the model's, the
// refused calls taken out of both; the hooks run so far depend on the
// other goroutine and are not compared here.
func compareGoroutine(want, got []txmodel.Result) string {
	if len(want) != len(got) {
		return fmt.Sprintf("%d results, the model has %d", len(got), len(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		g.Path, w.Hooks, g.Hooks = w.Path, "", ""
		if d := txmodel.Diff(w, g); d != "" {
			return fmt.Sprintf("call %d (%v): %s", i+1, w.Op, d)
		}
	}
	return ""
}
