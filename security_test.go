package piccolo_test

// Hostile input: identifiers and values that would break naive SQL
// building, and statements or arguments too large for the server.

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
)

// hostileStrings break SQL built by concatenation or naive quoting.
var hostileStrings = []string{
	`'); DROP TABLE x; --`,
	`" OR 1=1 --`,
	`a"b""c`,
	`Robert'); DROP TABLE students;--`,
	`$1`,
	`$$ dollar $$`,
	`\'; SELECT 1; --`,
	`/* comment */`,
	"tab\tnew\nline\r",
	"SELECT",
	"MiXeD CaSe",
	"ünïcødé 楽団 🎸",
	"\u202egnp.exe", // right-to-left override
	strings.Repeat("x", 63),
}

// TestHostileIdentifiersAndValuesRoundTrip creates a table and columns
// named by hostile strings (quoted with QuoteIdentifier), stores hostile
// values (always bound), and reads both back unchanged.
func TestHostileIdentifiersAndValuesRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{MaxConns: 2})
	ctx := context.Background()
	for i, name := range hostileStrings {
		table, err := piccolo.QuoteIdentifier(name)
		if err != nil {
			t.Fatalf("QuoteIdentifier(%q): %v", name, err)
		}
		col, err := piccolo.QuoteIdentifier(hostileStrings[(i+1)%len(hostileStrings)])
		if err != nil {
			t.Fatal(err)
		}
		if err := e.RunDDL(ctx, "CREATE TABLE "+table+" ("+col+" text)"); err != nil {
			t.Fatalf("create table %s: %v", table, err)
		}
		t.Cleanup(func() { _ = e.RunDDL(context.Background(), "DROP TABLE "+table) })
		// The catalog holds exactly the names given.
		got := scalar[string](t, ctx, e, "SELECT relname::text FROM pg_class WHERE oid = $1::regclass", table)
		if got != name {
			t.Fatalf("table name %q stored as %q", name, got)
		}
		gotCol := scalar[string](t, ctx, e, "SELECT attname::text FROM pg_attribute WHERE attrelid = $1::regclass AND attnum = 1", table)
		if want := hostileStrings[(i+1)%len(hostileStrings)]; gotCol != want {
			t.Fatalf("column name %q stored as %q", want, gotCol)
		}
		for _, v := range hostileStrings {
			if _, err := e.Exec(ctx, piccolo.Querystring{SQL: "INSERT INTO " + table + " (" + col + ") VALUES ($1)", Args: []any{v}}); err != nil {
				t.Fatalf("insert %q: %v", v, err)
			}
		}
		rows, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT " + col + " AS v FROM " + table})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != len(hostileStrings) {
			t.Fatalf("%d rows in %s, want %d", len(rows), table, len(hostileStrings))
		}
		for j, r := range rows {
			if r["v"] != hostileStrings[j] {
				t.Fatalf("value %q came back as %q", hostileStrings[j], r["v"])
			}
		}
	}
	// Names PostgreSQL cannot hold exactly are refused before any I/O.
	for _, bad := range []string{"", "a\x00b", strings.Repeat("x", 64), "\xff"} {
		if _, err := piccolo.QuoteIdentifier(bad); !errors.Is(err, piccolo.ErrInvalidIdentifier) {
			t.Errorf("QuoteIdentifier(%q): %v, want ErrInvalidIdentifier", bad, err)
		}
	}
	// A NUL in a text value is PostgreSQL's to refuse, clearly, and the
	// connection survives it.
	_, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT $1::text", Args: []any{"a\x00b"}})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != pgerrcode.CharacterNotInRepertoire {
		t.Fatalf("NUL in a text value: %v, want 22021", err)
	}
	faultStillWorks(t, e, "")
}

// TestValuesAreBoundNotInterpolated reads the statement as the server
// received it, from pg_stat_activity: values travel as bound parameters,
// never spliced into the SQL text (pgx's simple protocol would do that).
func TestValuesAreBoundNotInterpolated(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{})
	ctx := context.Background()
	const marker = "bound-marker'--"
	const sql = "SELECT query AS q FROM pg_stat_activity WHERE pid = pg_backend_pid() AND $1::text IS NOT NULL"
	check := func(where string, got any) {
		t.Helper()
		q, _ := got.(string)
		if !strings.Contains(q, "$1") || strings.Contains(q, "bound-marker") {
			t.Errorf("%s: the server received %q: the value was interpolated", where, q)
		}
	}
	rows, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: sql, Args: []any{marker}})
	if err != nil {
		t.Fatal(err)
	}
	check("pool", rows[0]["q"])
	err = e.Transaction(ctx, func(ctx context.Context) error {
		rows, err := e.RunQuerystring(ctx, piccolo.Querystring{SQL: sql, Args: []any{marker}})
		if err == nil {
			check("transaction", rows[0]["q"])
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Atomic().Add(piccolo.Raw("SELECT 1 WHERE $1::text IS NOT NULL", marker)).Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestLargeArgumentRoundTrips sends a 100 MB argument: PostgreSQL accepts
// values up to 1 GB, so it must arrive whole, without hanging the pool.
func TestLargeArgumentRoundTrips(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{MaxConns: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	big := bytes.Repeat([]byte("0123456789abcdef"), 100<<20/16)
	sum := md5.Sum(big)
	start := time.Now()
	got := scalar[string](t, ctx, e, "SELECT md5($1::bytea)", big)
	if got != hex.EncodeToString(sum[:]) {
		t.Fatalf("md5 of the 100 MB argument on the server %s, want %x", got, sum)
	}
	t.Logf("100 MB argument round trip: %v", time.Since(start))
	faultStillWorks(t, e, "")
}

// TestLoggedArgumentsAreBounded: with LogQueries on, a large argument
// must not be copied whole into the log.
//
// Fixed (was a bug): logStatement (log.go:78, slog.Any("args", args)) logs every argument
// in full: a []byte becomes a log line three times its size ("[48 48
// ...]"), so a 100 MB upload with LogQueries on writes ~300 MB of log per
// statement and holds it in memory while formatting. Fix: log arguments through a
// slog.LogValuer that truncates strings and []byte beyond a limit (say
// 256 bytes, with their length: "0123…(1048576 bytes)") and caps the
// number of arguments logged.
func TestLoggedArgumentsAreBounded(t *testing.T) {
	t.Parallel()
	e, logs := loggedEngine(t)
	arg := bytes.Repeat([]byte("0"), 256<<10)
	if got := scalar[int32](t, context.Background(), e, "SELECT length($1::bytea)", arg); got != 256<<10 {
		t.Fatalf("length %d", got)
	}
	if n := len(logs.String()); n > 64<<10 {
		t.Fatalf("logging one statement with a 256 KiB argument wrote %d bytes of log", n)
	}
}

// TestHugeStatementFailsClearly sends a statement beyond PostgreSQL's
// 1 GB message limit: the engine refuses it at once, before copying or
// sending anything, with an error that says why, and the pool goes on.
// (Before the engine checked sizes, pgx refused it only after ~6 s and
// ~3 GB of copies, and one just under the limit reached the server and
// failed there with 54000 out of memory.)
func TestHugeStatementFailsClearly(t *testing.T) {
	t.Parallel()
	e := newEngine(t, true, piccolo.PostgresConfig{MaxConns: 2})
	ctx := context.Background()
	// Over PostgreSQL's 1 GB message limit. The pages of a fresh slice are
	// not touched until written, so this costs no real memory.
	huge := make([]byte, 1<<30)
	q := piccolo.Querystring{SQL: "SELECT length($1)", Args: []any{huge}}
	if _, err := e.RunQuerystring(ctx, q); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("1 GB statement: %v, want an error saying it is too large", err)
	}
	if _, err := e.Batch(ctx, piccolo.Raw(q.SQL, huge)); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("1 GB batch: %v", err)
	}
	var ae *piccolo.AtomicError
	if err := e.Atomic().Add(piccolo.Raw("SELECT 1"), piccolo.Raw(q.SQL, huge)).Run(ctx); !errors.As(err, &ae) || ae.Index != 1 {
		t.Fatalf("1 GB statement in an Atomic: %v", err)
	}
	faultStillWorks(t, e, "")
}
