package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/piccolo-go/piccolo"
)

// stepLogging runs a transaction on an engine logging through slog's text
// handler and expects BEGIN, the query, its rows and COMMIT in the log.
func stepLogging(ctx context.Context, t *tour) (string, error) {
	var logged bytes.Buffer
	handler := slog.NewTextHandler(io.MultiWriter(t.out, &logged), &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{} // keep the lines short
			}
			return a
		},
	})
	// No pool: outside a transaction each statement would take a one-shot
	// connection; this one runs in a transaction on one connection.
	logging, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{
		DSN:          t.dsn,
		LogQueries:   true,
		LogResponses: true,
		Logger:       slog.New(handler),
	})
	if err != nil {
		return "", err
	}
	defer logging.Close()
	t.sql.flush()
	var rows []Band
	err = logging.Transaction(ctx, func(ctx context.Context) error {
		var err error
		rows, err = Bands.Select(BandName, BandPopularity).Where(BandPopularity.Gt(500)).OrderBy(BandPopularity.Desc()).All(ctx, logging)
		return err
	}, piccolo.ReadOnly())
	if err != nil {
		return "", err
	}
	out := logged.String()
	for _, want := range []string{"sql=\"BEGIN READ ONLY\"", `sql="SELECT \"name\", \"popularity\" FROM \"band\"`, "args=[500]", "sql=COMMIT", "msg=\"piccolo: response\" rows=3"} {
		if !strings.Contains(out, want) {
			return "", fmt.Errorf("the log lacks %s", want)
		}
	}
	if len(rows) != 3 {
		return "", fmt.Errorf("%d bands more popular than 500, want 3", len(rows))
	}
	return fmt.Sprintf("%d log records: BEGIN, the SELECT with its argument, its rows and COMMIT, each with query id and duration",
		strings.Count(out, "\n")), nil
}
