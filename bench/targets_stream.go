package main

import "fmt"

// streamWithin checks that the batch stream name, in batches of 1,000,
// takes at most limit times as long as pgx's typed DECLARE/FETCH loop of
// the same batch size: issue 12 measures rows as maps, as well as typed
// rows, against pgx's typed Scan.
func (rep *report) streamWithin(what, name string, limit float64) target {
	t := target{name: fmt.Sprintf("%s within %.2fx of pgx's typed scan, batches of 1,000", what, limit)}
	s, ok1 := rep.stream(streamCase{name: name, batch: 1000}.id())
	base, ok2 := rep.stream(streamCase{name: streamPgxCursor, batch: 1000}.id())
	if !ok1 || !ok2 || base.Seconds == 0 {
		t.detail = "not measured"
		return t
	}
	ratio := s.Seconds / base.Seconds
	t.met = ratio <= limit
	t.detail = fmt.Sprintf("%.2fx (%.3f s vs %.3f s)", ratio, s.Seconds, base.Seconds)
	return t
}
