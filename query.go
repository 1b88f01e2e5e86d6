package piccolo

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
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

// Pipeliner is a Runner whose work is only statements and reading their
// rows, so that an Atomic can send it in one pipeline with the queries
// around it instead of running it alone (query.Insert writes the keys the
// server generated back into its rows this way).
type Pipeliner interface {
	Runner
	// Pipeline renders the work now. ok false: it must run through Run.
	Pipeline() (p Pipelined, ok bool, err error)
}

// Pipelined is a Pipeliner's work, rendered for a pipeline.
type Pipelined struct {
	Statements []Querystring
	// Scans[i], when not nil, is called for each row of Statements[i].
	Scans []func(pgx.Rows) error
	// Done, when not nil, is called once every statement ran and its rows
	// were scanned, to check what was read.
	Done func() error
	// Writes are pointers to what the scans write into. A later query of
	// the same Atomic with an argument that points into them (or a later
	// Pipeliner that writes into them too) is rendered and sent only after
	// these statements ran, as it would be without pipelining.
	Writes []any
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
