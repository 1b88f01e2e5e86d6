package piccolo_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/piccolo-go/piccolo"
)

// An option that means nothing for a call is refused before any I/O, with
// an error naming the call and the option, instead of being ignored:
// BatchSize everywhere but Batch, Read for CopyFrom, Retry for Begin.
func TestOptionsAreRefusedWhereTheyMeanNothing(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	ctx := context.Background()
	q := piccolo.Querystring{SQL: "INSERT INTO " + table + " (name) VALUES ('refused')"}
	batch := piccolo.BatchSize(10)
	copyRows := func(opts ...piccolo.Option) error {
		_, err := e.CopyFrom(ctx, pgx.Identifier{strings.Trim(table, `"`)}, []string{"name"}, pgx.CopyFromRows([][]any{{"refused"}}), opts...)
		return err
	}
	tests := []struct {
		name, want string
		run        func() error
	}{
		{"Exec BatchSize", "Exec does not take BatchSize", func() error { _, err := e.Exec(ctx, q, batch); return err }},
		{"QueryFunc BatchSize", "QueryFunc does not take BatchSize", func() error {
			return e.QueryFunc(ctx, q, func(pgx.Rows) error { return nil }, batch)
		}},
		{"RunQuerystring BatchSize", "RunQuerystring does not take BatchSize", func() error { _, err := e.RunQuerystring(ctx, q, batch); return err }},
		{"RunDDL BatchSize", "RunDDL does not take BatchSize", func() error { return e.RunDDL(ctx, q.SQL, batch) }},
		{"CopyFrom BatchSize", "CopyFrom does not take BatchSize", func() error { return copyRows(batch) }},
		{"CopyFrom Read", "CopyFrom does not take Read", func() error { return copyRows(piccolo.Read()) }},
		{"Begin Retry", "Begin does not take Retry", func() error { _, _, err := e.Begin(ctx, piccolo.Retry(3)); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.run(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
	if got := names(t, e, table); len(got) != 0 {
		t.Errorf("refused calls wrote %v", got)
	}
	// The zero values change nothing, and the options a call takes work.
	if _, err := e.Exec(ctx, q, piccolo.Option{}, piccolo.Read()); err != nil {
		t.Fatalf("Exec with the zero Option and Read: %v", err)
	}
	if err := e.Transaction(ctx, func(context.Context) error { return nil }, piccolo.TxOption{}, piccolo.ReadOnly()); err != nil {
		t.Fatalf("Transaction with the zero TxOption: %v", err)
	}
	assertNoBorrowed(t, e)
}
