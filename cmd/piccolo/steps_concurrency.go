package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
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
	var start int32
	if err := t.scalar(ctx, &start, "SELECT popularity FROM band WHERE name = $1", band); err != nil {
		return "", err
	}
	t.say("%s' popularity is %d; each goroutine adds one.", band, start)

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
				var popularity int32
				err := t.engine.QueryFunc(ctx, piccolo.Querystring{SQL: "SELECT popularity FROM band WHERE name = $1", Args: []any{band}},
					func(rows pgx.Rows) error { return rows.Scan(&popularity) })
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
				_, err = t.engine.Exec(ctx, piccolo.Querystring{SQL: "UPDATE band SET popularity = $1 WHERE name = $2", Args: []any{popularity + 1, band}})
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
	var end int32
	if err := t.scalar(ctx, &end, "SELECT popularity FROM band WHERE name = $1", band); err != nil {
		return "", err
	}
	total := attempts[0].Load() + attempts[1].Load()
	switch {
	case end != start+2:
		return "", fmt.Errorf("%s' popularity went from %d to %d, want %d: an update was lost", band, start, end, start+2)
	case total < 3:
		return "", fmt.Errorf("%d attempts in all, want at least 3: no serialization conflict happened", total)
	}
	return fmt.Sprintf("%d attempts in all: the loser failed with 40001, was retried and committed; popularity %d → %d, no update lost",
		total, start, end), nil
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
		id      int32
		created bool
		err     error
	}
	results := make([]result, goroutines)
	startGate := make(chan struct{})
	var wg sync.WaitGroup
	for i := range goroutines {
		wg.Go(func() {
			<-startGate
			r := &results[i]
			r.id, r.created, r.err = getOrCreateBand(ctx, t.engine, band)
		})
	}
	close(startGate)
	wg.Wait()
	t.sql.setSummary(false)

	ids := map[int32]int{}
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
	if _, err := t.show(ctx, "SELECT id, name FROM band WHERE name = $1", band); err != nil {
		return "", err
	}
	var rows int64
	if err := t.scalar(ctx, &rows, "SELECT count(*) FROM band WHERE name = $1", band); err != nil {
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

// getOrCreateBand returns the id of the band called name, inserting it if
// there is none; created tells which. It is race-safe without a
// transaction: INSERT ... ON CONFLICT DO NOTHING waits for a concurrent
// insert of the same name and then inserts nothing, and the SELECT after it
// sees the committed row.
func getOrCreateBand(ctx context.Context, e piccolo.Engine, name string) (id int32, created bool, err error) {
	scan := func(rows pgx.Rows) error { created = true; return rows.Scan(&id) }
	err = e.QueryFunc(ctx, piccolo.Querystring{
		SQL:  "INSERT INTO band (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id",
		Args: []any{name},
	}, scan)
	if err != nil || created {
		return id, created, err
	}
	found := false
	err = e.QueryFunc(ctx, piccolo.Querystring{SQL: "SELECT id FROM band WHERE name = $1", Args: []any{name}},
		func(rows pgx.Rows) error { found = true; return rows.Scan(&id) })
	if err == nil && !found {
		err = fmt.Errorf("band %q neither inserted nor found", name)
	}
	return id, false, err
}
