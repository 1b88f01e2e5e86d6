package piccolo_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/piccolo-go/piccolo"
)

func TestLogQueriesCoversEveryStatement(t *testing.T) {
	t.Parallel()
	e, logs := loggedEngine(t)
	table := newTable(t, e)
	ctx := context.Background()
	err := e.Transaction(ctx, func(ctx context.Context) error {
		mustInsert(t, ctx, e, table, "logged-arg")
		err := e.Transaction(ctx, func(ctx context.Context) error {
			b, err := e.Batch(ctx, piccolo.Raw("SELECT name FROM "+table), piccolo.BatchSize(5))
			if err != nil {
				return err
			}
			_, err = b.Next(ctx)
			return err
		}, piccolo.Nesting(piccolo.NestSavepoint))
		if err != nil {
			return err
		}
		// The block's RELEASE rides with the next statement (COMMIT alone
		// would make it needless).
		return insert(ctx, e, table, "after-release")
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Atomic().Add(piccolo.Raw("INSERT INTO "+table+" (name) VALUES ($1)", "atomic-arg")).Run(ctx); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, want := range []string{"BEGIN", "SAVEPOINT", "DECLARE", "FETCH FORWARD 5", "CLOSE", "RELEASE SAVEPOINT", "COMMIT", "logged-arg", "atomic-arg"} {
		if !strings.Contains(out, want) {
			t.Errorf("log has no %q", want)
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	ids := map[string]bool{}
	idRE := regexp.MustCompile(`query_id=(\d+)`)
	for _, line := range lines {
		if !strings.Contains(line, "level=INFO") || !strings.Contains(line, "duration=") {
			t.Errorf("line without level INFO or duration: %s", line)
		}
		m := idRE.FindStringSubmatch(line)
		if m == nil || ids[m[1]] {
			t.Errorf("line without a unique query id: %s", line)
			continue
		}
		ids[m[1]] = true
	}
	if strings.Contains(out, "tag=") {
		t.Error("LogResponses is off but tags were logged")
	}
}

func TestLogResponses(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	e := newEngine(t, true, piccolo.PostgresConfig{LogResponses: true, Logger: logger})
	if _, err := e.RunQuerystring(context.Background(), piccolo.Querystring{SQL: "SELECT 'hello-response' AS greeting"}); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "hello-response") || !strings.Contains(out, "tag=\"SELECT 1\"") {
		t.Fatalf("responses not logged:\n%s", out)
	}
	if strings.Contains(out, "sql=") {
		t.Fatal("LogQueries is off but SQL was logged")
	}
}

func TestNoLoggingByDefault(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	e := newEngine(t, true, piccolo.PostgresConfig{Logger: logger})
	if _, err := e.RunQuerystring(context.Background(), piccolo.Querystring{SQL: "SELECT 1"}); err != nil {
		t.Fatal(err)
	}
	if logs.String() != "" {
		t.Fatalf("logged without LogQueries or LogResponses:\n%s", logs)
	}
}

// LogQueries logs what the engine sends on its own: BEGIN, SAVEPOINT,
// ROLLBACK TO SAVEPOINT and ROLLBACK.
func TestLogQueriesCoversRollbacksAndSavepointBlocks(t *testing.T) {
	t.Parallel()
	e, logs := loggedEngine(t)
	table := newTable(t, e)
	_ = e.Transaction(context.Background(), func(ctx context.Context) error {
		mustInsert(t, ctx, e, table, "a")
		_ = e.Transaction(ctx, func(ctx context.Context) error {
			mustInsert(t, ctx, e, table, "b")
			return errBoom
		}, piccolo.Nesting(piccolo.NestSavepoint))
		return errBoom
	})
	for _, want := range []string{"BEGIN", "SAVEPOINT", "ROLLBACK TO SAVEPOINT", "sql=ROLLBACK"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log has no %q:\n%s", want, logs)
		}
	}
}

// LogResponses logs the rows QueryFunc hands to its scan callback (the
// query layer reads every Select through it).
func TestLogResponsesCoversQueryFunc(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	e := newEngine(t, true, piccolo.PostgresConfig{LogResponses: true, Logger: logger})
	err := e.QueryFunc(context.Background(), piccolo.Querystring{SQL: "SELECT 'queryfunc-response' AS greeting"}, func(rows pgx.Rows) error {
		var s string
		return rows.Scan(&s)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "queryfunc-response") {
		t.Fatalf("rows of QueryFunc not logged with LogResponses:\n%s", logs)
	}
}
