package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/piccolo-go/piccolo"
)

// concurrencyTimeout bounds the steps whose goroutines wait for each other.
const concurrencyTimeout = time.Minute

// stepRetry makes two SERIALIZABLE transactions read and write the same
// row; it expects Retry to re-run the loser and no update to be lost.
func stepRetry(ctx context.Context, t *tour) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, concurrencyTimeout)
	defer cancel()
	const band = "Rustaceans"
	popularity := Bands.Select(BandPopularity).Where(BandName.Eq(band))
	start, err := popularity.First(ctx, t.engine)
	if err != nil {
		return "", err
	}
	t.say("%s' popularity is %d; each goroutine adds one.", band, start.Popularity)

	// read[i] closes when goroutine i has read, on its first attempt: both
	// read before either writes, so a lost update is sure to be attempted.
	read := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
	var attempts [2]atomic.Int32
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			errs[i] = t.engine.Transaction(ctx, func(ctx context.Context) error {
				attempt := attempts[i].Add(1)
				current, err := popularity.First(ctx, t.engine)
				if err != nil {
					return err
				}
				if attempt == 1 {
					close(read[i])
					select {
					case <-read[1-i]:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				_, err = Bands.Update(BandPopularity.Set(current.Popularity+1)).Where(BandName.Eq(band)).Run(ctx, t.engine)
				return err
			}, piccolo.Isolation(piccolo.Serializable), piccolo.Retry(5))
		})
	}
	wg.Wait()
	t.sql.flush()
	res := &resultTable{columns: []resultColumn{{name: "goroutine"}, {name: "attempts", numeric: true}, {name: "result"}}}
	for i := range 2 {
		outcome := "committed"
		if errs[i] != nil {
			outcome = errs[i].Error()
		}
		res.rows = append(res.rows, []string{fmt.Sprint(i + 1), fmt.Sprint(attempts[i].Load()), outcome})
	}
	writeTable(t.out, res, t.st)
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	end, err := popularity.First(ctx, t.engine)
	if err != nil {
		return "", err
	}
	total := attempts[0].Load() + attempts[1].Load()
	switch {
	case end.Popularity != start.Popularity+2:
		return "", fmt.Errorf("%s' popularity went from %d to %d, want %d: an update was lost",
			band, start.Popularity, end.Popularity, start.Popularity+2)
	case total < 3:
		return "", fmt.Errorf("%d attempts in all, want at least 3: no serialization conflict happened", total)
	}
	return fmt.Sprintf("%d attempts in all: the loser failed with 40001, was retried and committed; popularity %d → %d, no update lost",
		total, start.Popularity, end.Popularity), nil
}

// stepGetOrCreate races 50 goroutines to get or create one band; it
// expects one row, one creator and one id.
func stepGetOrCreate(ctx context.Context, t *tour) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, concurrencyTimeout)
	defer cancel()
	const goroutines = 50
	const band = "The Concurrent Gophers"
	t.sql.setSummary(true) // 50 goroutines interleave: count statements instead
	type result struct {
		id      int64
		created bool
		err     error
	}
	results := make([]result, goroutines)
	startGate := make(chan struct{})
	var wg sync.WaitGroup
	for i := range goroutines {
		wg.Go(func() {
			<-startGate
			b := &Band{Name: band}
			g := Bands.GetOrCreate(b, BandName)
			err := g.Run(ctx, t.engine)
			results[i] = result{id: b.ID, created: g.Created(), err: err}
		})
	}
	close(startGate)
	wg.Wait()
	t.sql.setSummary(false)

	ids := map[int64]int{}
	created := 0
	var errs []error
	for _, r := range results {
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		ids[r.id]++
		if r.created {
			created++
		}
	}
	res := &resultTable{columns: []resultColumn{{name: "outcome"}, {name: "goroutines", numeric: true}}}
	res.rows = [][]string{
		{"created the band", fmt.Sprint(created)},
		{"found it", fmt.Sprint(goroutines - created - len(errs))},
		{"failed", fmt.Sprint(len(errs))},
	}
	writeTable(t.out, res, t.st)
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	if _, err := selectRows(ctx, t, Bands, Bands.Select(BandID, BandName).Where(BandName.Eq(band)), BandID.Name(), BandName.Name()); err != nil {
		return "", err
	}
	rows, err := Bands.Count().Where(BandName.Eq(band)).Run(ctx, t.engine)
	if err != nil {
		return "", err
	}
	switch {
	case created != 1:
		return "", fmt.Errorf("%d goroutines created the band, want exactly 1", created)
	case len(ids) != 1:
		return "", fmt.Errorf("the goroutines saw %d different ids, want 1", len(ids))
	case rows != 1:
		return "", fmt.Errorf("%d rows named %q, want 1", rows, band)
	}
	return fmt.Sprintf("%d goroutines, one row: 1 created it, %d found it, all with the same id", goroutines, goroutines-1), nil
}
