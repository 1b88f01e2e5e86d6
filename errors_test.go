package piccolo_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
)

// Errors are wrapped once: whichever entry point failed, the text starts
// with one "piccolo: " and names the statement once, as written (not
// quoted and escaped), with the node it ran on when it ran on one; the
// failing statement is a *StatementError and the server's error stays
// reachable.
func TestErrorsNameTheStatementOnceWithOnePrefix(t *testing.T) {
	t.Parallel()
	down, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{DSN: "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2"})
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, true, piccolo.PostgresConfig{ExtraNodes: map[string]*piccolo.PostgresEngine{"down": down}})
	ctx := context.Background()
	const sql = `SELECT "id" FROM "no_such_table"`
	q := piccolo.Querystring{SQL: sql}
	tests := []struct {
		name     string
		run      func() error
		sql      string // "" : no statement to name
		node     string
		pgServer bool // a *pgconn.PgError is reachable
	}{
		{"Exec", func() error { _, err := e.Exec(ctx, q); return err }, sql, "", true},
		{"QueryFunc", func() error {
			return e.QueryFunc(ctx, q, func(pgx.Rows) error { return nil })
		}, sql, "", true},
		{"RunQuerystring", func() error { _, err := e.RunQuerystring(ctx, q); return err }, sql, "", true},
		{"RunDDL", func() error { return e.RunDDL(ctx, `DROP TABLE "no_such_table"`) }, `DROP TABLE "no_such_table"`, "", true},
		{"in a transaction", func() error {
			return e.Transaction(ctx, func(ctx context.Context) error { _, err := e.Exec(ctx, q); return err })
		}, sql, "", true},
		{"Batch", func() error { _, err := e.Batch(ctx, piccolo.Raw(sql)); return err }, sql, "", true},
		{"Atomic", func() error { return e.Atomic().Add(piccolo.Raw("SELECT 1"), piccolo.Raw(sql)).Run(ctx) }, sql, "", true},
		{"OnNode", func() error {
			_, err := e.Exec(ctx, piccolo.Querystring{SQL: "SELECT 1"}, piccolo.OnNode("down"))
			return err
		}, "SELECT 1", "down", false},
		{"CopyFrom", func() error {
			_, err := e.CopyFrom(ctx, pgx.Identifier{"no_such_table"}, []string{"id"}, pgx.CopyFromRows([][]any{{1}}))
			return err
		}, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if n := strings.Count(msg, "piccolo: "); n != 1 || !strings.HasPrefix(msg, "piccolo: ") {
				t.Errorf("%q has %d piccolo prefixes, want one at the start", msg, n)
			}
			if strings.Contains(msg, `\"`) {
				t.Errorf("%q escapes quotes", msg)
			}
			var pgErr *pgconn.PgError
			if tt.pgServer != errors.As(err, &pgErr) {
				t.Errorf("%v: PgError reachable %v, want %v", err, !tt.pgServer, tt.pgServer)
			}
			if tt.sql == "" {
				return
			}
			if n := strings.Count(msg, tt.sql); n != 1 {
				t.Errorf("%q names the statement %d times, want once", msg, n)
			}
			var se *piccolo.StatementError
			if !errors.As(err, &se) || !strings.HasSuffix(se.SQL, tt.sql) || se.Node != tt.node {
				t.Fatalf("%v: want a *StatementError for %q on node %q, got %+v", err, tt.sql, tt.node, se)
			}
			if tt.node != "" && !strings.HasPrefix(msg, `piccolo: node "`+tt.node+`": `) {
				t.Errorf("%q does not start with the node", msg)
			}
		})
	}
}
