package query

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/piccolo-go/piccolo"
)

// getOrCreateAttempts bounds how often GetOrCreate goes round when the row
// its INSERT conflicted with is deleted before its SELECT sees it.
const getOrCreateAttempts = 3

// GetOrCreate finds the row whose key columns equal row's, or inserts row:
// Piccolo's get_or_create. Build it with Table.GetOrCreate; run it with Run
// or add it to an Atomic. Either way Run fills *row with the database's row
// (every column) and Created reports whether it was inserted.
//
// It is race-safe without a savepoint, because none of its statements
// fails when another session inserts the same key:
//
//	SELECT ... WHERE key = $1                          -- found: done
//	INSERT ... ON CONFLICT (key) DO NOTHING RETURNING  -- a row: created
//	SELECT ... WHERE key = $1                          -- the winner's row
//
// The INSERT waits for a concurrent insert of the key to commit or roll
// back, and under READ COMMITTED (PostgreSQL's default) the second SELECT
// sees the committed row. Concurrent callers therefore get one row and the
// same primary key, and an outer transaction is never aborted by the race.
// Under REPEATABLE READ or SERIALIZABLE PostgreSQL reports the race as a
// serialization failure (40001) instead: run such transactions with
// piccolo.Retry. Errors that are not the race (a foreign key or another
// unique constraint violated by the new row) are returned and, as any
// failed statement, abort the transaction they ran in.
//
// The key columns need a unique constraint or index (ON CONFLICT requires
// one) and must not be NULL. A GetOrCreate records the outcome of its last
// Run: run it from one goroutine at a time.
type GetOrCreate[T any] struct {
	t       *Table[T]
	row     *T
	key     []colRef
	created bool
}

// GetOrCreate starts a get-or-create of row, identified by the unique key
// columns key (at least one). row holds the key's values and the values a
// new row gets; an identity primary key left zero is numbered by the
// database.
func (t *Table[T]) GetOrCreate(row *T, key ...Col) *GetOrCreate[T] {
	return &GetOrCreate[T]{t: t, row: row, key: refs(key)}
}

// Created reports whether the last Run inserted the row.
func (g *GetOrCreate[T]) Created() bool { return g.created }

// Row returns the row Run filled in: the one passed to Table.GetOrCreate.
func (g *GetOrCreate[T]) Row() *T { return g.row }

// Querystrings implements piccolo.Query: the lookup and the insert. Run
// decides which of them run, and how often.
func (g *GetOrCreate[T]) Querystrings() ([]piccolo.Querystring, error) {
	get, _, ins, err := g.render()
	if err != nil {
		return nil, err
	}
	return []piccolo.Querystring{get, ins}, nil
}

// render renders the lookup, its columns and the insert.
func (g *GetOrCreate[T]) render() (get piccolo.Querystring, cols []*column, ins piccolo.Querystring, err error) {
	d := g.t.def
	r := newRenderer(d)
	if len(g.key) == 0 {
		r.fail(errors.New("no key columns"))
	}
	where := make([]Expr, len(g.key))
	for i, ref := range g.key {
		where[i] = keyExpr[T]{c: r.column(ref), row: g.row, what: "GetOrCreate"}
	}
	if _, err = r.querystring("GetOrCreate in"); err != nil {
		return
	}
	if get, cols, err = g.t.Select().Where(where...).render(); err != nil {
		return
	}
	i := g.t.Insert(g.row)
	i.conflict, i.target = "NOTHING", g.key
	p, err := i.plan()
	if err != nil {
		return
	}
	p.returning = d.cols
	p.tail += " RETURNING " + columnList(d.cols)
	ins, err = i.renderChunk(p, p.chunks[0])
	return
}

// Run gets or creates the row, fills *row with it and records whether it
// was created. It implements piccolo.Runner, so an Atomic runs it in its
// transaction.
func (g *GetOrCreate[T]) Run(ctx context.Context, e piccolo.Engine) error {
	g.created = false
	get, cols, ins, err := g.render()
	if err != nil {
		return err
	}
	for range getOrCreateAttempts {
		// The lookup runs on the primary (no piccolo.Read): a replica that
		// lags would send every call down the insert path.
		found := 0
		if err := e.QueryFunc(ctx, get, g.scan(cols, &found)); err != nil {
			return fmt.Errorf("query: GetOrCreate in %q: %w", g.t.def.name, err)
		}
		if found == 1 {
			return nil
		}
		created := 0
		if err := e.QueryFunc(ctx, ins, g.scan(g.t.def.cols, &created)); err != nil {
			return fmt.Errorf("query: GetOrCreate in %q: %w", g.t.def.name, err)
		}
		if created == 1 {
			g.created = true
			return nil
		}
		// The INSERT met a row with the key: the next lookup, a new snapshot
		// under READ COMMITTED, sees it unless it was deleted meanwhile.
	}
	return fmt.Errorf("query: GetOrCreate in %q: the row with the key was deleted between insert and lookup %d times", g.t.def.name, getOrCreateAttempts)
}

// scan returns a QueryFunc callback that scans the one row expected into
// g.row, counting rows in *n.
func (g *GetOrCreate[T]) scan(cols []*column, n *int) func(pgx.Rows) error {
	d := make([]any, len(cols))
	return func(rows pgx.Rows) error {
		if *n++; *n > 1 {
			return errors.New("more than one row has the key: is it unique?")
		}
		dest(d, unsafe.Pointer(g.row), cols)
		return rows.Scan(d...)
	}
}

// columnList renders quoted column names separated by commas.
func columnList(cols []*column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.quoted
	}
	return strings.Join(names, ", ")
}

// Compile-time checks of the object queries' contracts.
var (
	_ piccolo.Query  = Objects[struct{}]{}
	_ piccolo.Runner = Save[struct{}]{}
	_ piccolo.Runner = (*GetOrCreate[struct{}])(nil)
)
