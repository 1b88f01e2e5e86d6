package piccolo

import (
	"context"
	"errors"
)

// Querystring is one SQL statement with its arguments, which bind to the
// statement's $1..$n placeholders. Values never appear in SQL text.
type Querystring struct {
	SQL  string
	Args []any
}

// Query is anything the engine can run: a Querystring, Raw and every
// builder of the query layer. Querystrings renders the statements in the
// order they must run; it needs no database.
type Query interface {
	Querystrings() ([]Querystring, error)
}

// Querystrings implements Query: a Querystring is a query of one statement,
// so it goes wherever a Query goes (Batch, Atomic), as a builder goes
// wherever a Querystring does (Exec, QueryFunc, RunQuerystring).
func (q Querystring) Querystrings() ([]Querystring, error) {
	return []Querystring{q}, nil
}

// Runner is a Query whose effect is more than sending its statements (a
// GetOrCreate reads, inserts on a miss and reads again). Atomic calls Run
// inside its transaction instead of sending Querystrings.
type Runner interface {
	Query
	Run(ctx context.Context, e Engine) error
}

// rawQuery is the Query returned by Raw.
type rawQuery struct {
	qs Querystring
}

// Raw returns a Query of one SQL statement with $1..$n placeholders bound to
// args. It runs through RunQuerystring's routing, streams through Batch and
// joins an Atomic like every builder.
func Raw(sql string, args ...any) Query {
	return rawQuery{qs: Querystring{SQL: sql, Args: args}}
}

// Querystrings implements Query.
func (r rawQuery) Querystrings() ([]Querystring, error) {
	if r.qs.SQL == "" {
		return nil, errors.New("piccolo: Raw: empty SQL")
	}
	return []Querystring{r.qs}, nil
}
