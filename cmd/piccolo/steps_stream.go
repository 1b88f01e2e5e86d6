package main

import (
	"context"
	"fmt"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/piccolo-go/piccolo"
	"github.com/schollz/progressbar/v3"
)

const (
	// streamBatchSize is the rows per FETCH of the batch step.
	streamBatchSize = 5000
	// streamHeapLimit is the most the heap may grow while streaming: far
	// below what a million rows held at once take (several hundred MiB).
	streamHeapLimit = 64 << 20
)

// stepStream streams generated rows through a Batch and expects each row
// once and a heap that does not grow with the result.
func stepStream(ctx context.Context, t *tour) (string, error) {
	q := piccolo.Raw("SELECT g AS id, md5(g::text) AS payload FROM generate_series(1, $1::int) AS g", t.rows)
	before := heapInUse()
	sampler := startHeapSampler(10 * time.Millisecond)
	defer sampler.stop()
	bar := progressbar.NewOptions64(int64(t.rows),
		progressbar.OptionSetWriter(t.out),
		progressbar.OptionSetVisibility(t.progress),
		progressbar.OptionSetDescription("streaming"),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("rows"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(t.out) }),
	)
	start := time.Now()
	batch, err := t.engine.Batch(ctx, q, piccolo.BatchSize(streamBatchSize))
	if err != nil {
		return "", err
	}
	defer batch.Close(ctx) // idempotent; the loop below closes it
	var n, sum int64
	batches := 0
	for rows, err := range batch.All(ctx) {
		if err != nil {
			return "", err
		}
		batches++
		for _, row := range rows {
			id, _ := row["id"].(int32)
			sum += int64(id)
		}
		n += int64(len(rows))
		sampler.sample()
		bar.Describe("streaming, peak heap " + mib(sampler.peak()))
		_ = bar.Add(len(rows)) // only fails writing to the terminal
	}
	elapsed := time.Since(start)
	peak := sampler.stop()
	_ = bar.Finish()
	t.say("Streamed %s rows in %s: %s rows/s, %d FETCHes of up to %d rows.",
		thousands(n), elapsed.Round(time.Millisecond), thousands(int64(float64(n)/elapsed.Seconds())), batches, streamBatchSize)
	t.say("Heap in use: %s before, %s at the peak while streaming.", mib(before), mib(peak))

	want := int64(t.rows)
	switch {
	case n != want:
		return "", fmt.Errorf("streamed %d rows, want %d", n, want)
	case sum != want*(want+1)/2:
		return "", fmt.Errorf("the ids add up to %d, want %d: rows were lost or repeated", sum, want*(want+1)/2)
	case peak > before+streamHeapLimit:
		return "", fmt.Errorf("the heap grew from %s to %s while streaming, want at most %s more: memory is not constant",
			mib(before), mib(peak), mib(streamHeapLimit))
	}
	return fmt.Sprintf("all %s rows arrived once, in order of the cursor, with a peak heap of %s", thousands(n), mib(peak)), nil
}

// heapSampler records the peak of the heap's in-use memory (what
// runtime.MemStats calls HeapInuse) by sampling it until stopped.
type heapSampler struct {
	max  atomic.Uint64
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// startHeapSampler samples the heap every interval until stop.
func startHeapSampler(interval time.Duration) *heapSampler {
	h := &heapSampler{done: make(chan struct{})}
	h.sample()
	h.wg.Go(func() {
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		for {
			select {
			case <-ticker.C:
				h.sample()
			case <-h.done:
				return
			}
		}
	})
	return h
}

// sample takes one sample now.
func (h *heapSampler) sample() {
	v := heapInUse()
	for {
		old := h.max.Load()
		if v <= old || h.max.CompareAndSwap(old, v) {
			return
		}
	}
}

// peak returns the highest sample so far.
func (h *heapSampler) peak() uint64 { return h.max.Load() }

// stop ends the sampling and returns the peak. It is idempotent.
func (h *heapSampler) stop() uint64 {
	h.once.Do(func() {
		close(h.done)
		h.wg.Wait()
		h.sample()
	})
	return h.peak()
}

// heapInUse returns the bytes of heap spans in use: live and not yet
// swept objects plus the free space inside their spans.
func heapInUse() uint64 {
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
	}
	metrics.Read(s)
	var total uint64
	for _, x := range s {
		if x.Value.Kind() == metrics.KindUint64 {
			total += x.Value.Uint64()
		}
	}
	return total
}

// mib formats a byte count in MiB.
func mib(b uint64) string {
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

// thousands formats n with thousands separators: 1000000 is 1,000,000.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	start := 0
	if n < 0 {
		start = 1
	}
	for i := len(s) - 3; i > start; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
