package piccolo

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo/internal/sqltext"
)

// RunQuerystring runs one statement and returns its rows as maps from
// column name to value.
//
// RunQuerystring, RunDDL, Exec and QueryFunc take OnNode and Read (a
// statement marked Read may go to a replica, see ReadRouting); BatchSize
// means nothing for them and is refused before any I/O.
func (e *PostgresEngine) RunQuerystring(ctx context.Context, q Query, opts ...Option) ([]map[string]any, error) {
	one, err := oneStatement("RunQuerystring", q)
	if err != nil {
		return nil, err
	}
	m := &mapRows{}
	if _, err := e.statement(ctx, "RunQuerystring", opts, one, m.scan); err != nil {
		return nil, err
	}
	return m.out, nil
}

// RunDDL runs a DDL string. It may hold several statements separated by
// semicolons; it takes no arguments. Inside a transaction of the engine, a
// script that would begin or end that transaction (BEGIN, COMMIT,
// ROLLBACK... anywhere in it) is refused with ErrTransactionControl before
// anything is sent; outside one, a script may hold its own BEGIN and COMMIT.
func (e *PostgresEngine) RunDDL(ctx context.Context, ddl string, opts ...Option) error {
	_, err := e.statement(ctx, "RunDDL", opts, Querystring{SQL: ddl}, nil)
	return err
}

// Exec runs q and returns its command tag (e.g. "INSERT 0 3"). q is a
// Querystring, Raw or a builder of the query layer. A Querystring without
// arguments may hold several statements separated by semicolons. A query
// that renders several statements (a table's Create with its indexes) runs
// them in order in one transaction, joining the context's, all or nothing,
// and returns the last one's tag; it takes no options then. A Runner (such
// as GetOrCreate) runs its own logic. Inside a transaction of the engine,
// Exec refuses SQL that would begin or end that transaction, as RunDDL does.
func (e *PostgresEngine) Exec(ctx context.Context, q Query, opts ...Option) (pgconn.CommandTag, error) {
	if one, ok, err := rendered("Exec", q); ok || err != nil { // the common case
		if err != nil {
			return pgconn.CommandTag{}, err
		}
		return e.statement(ctx, "Exec", opts, one, nil)
	}
	if r, ok := q.(Runner); ok {
		if len(opts) > 0 {
			return pgconn.CommandTag{}, errors.New("piccolo: Exec: a Runner takes no options: it runs its own statements")
		}
		return pgconn.CommandTag{}, r.Run(ctx, e)
	}
	list, err := q.Querystrings()
	if err != nil {
		return pgconn.CommandTag{}, fmt.Errorf("piccolo: Exec: render query: %w", err)
	}
	switch {
	case len(list) == 0:
		return pgconn.CommandTag{}, errors.New("piccolo: Exec: the query renders no statement")
	case len(list) == 1:
		return e.statement(ctx, "Exec", opts, list[0], nil)
	case len(opts) > 0:
		return pgconn.CommandTag{}, fmt.Errorf("piccolo: Exec: a query of %d statements takes no options: it runs in one transaction on the primary", len(list))
	}
	var tag pgconn.CommandTag
	err = e.Transaction(ctx, func(ctx context.Context) error {
		for _, s := range list {
			if tag, err = e.statement(ctx, "Exec", nil, s, nil); err != nil {
				return err
			}
		}
		return nil
	})
	return tag, err
}

// oneStatement renders q, which must be one statement, for call.
func oneStatement(call string, q Query) (Querystring, error) {
	if one, ok, err := rendered(call, q); ok || err != nil {
		return one, err
	}
	list, err := q.Querystrings()
	if err != nil {
		return Querystring{}, fmt.Errorf("piccolo: %s: render query: %w", call, err)
	}
	if len(list) != 1 {
		return Querystring{}, fmt.Errorf("piccolo: %s runs one statement and the query renders %d: use Exec or an Atomic", call, len(list))
	}
	return list[0], nil
}

// rendered returns q when it is rendered already: a Querystring, or a
// *Querystring (which the query layer passes: it goes into a Query without
// an allocation of its own). A nil q, or a nil *Querystring, is an error of
// call.
func rendered(call string, q Query) (Querystring, bool, error) {
	switch q := q.(type) {
	case Querystring:
		return q, true, nil
	case *Querystring:
		if q != nil {
			return *q, true, nil
		}
	case nil:
	default:
		return Querystring{}, false, nil
	}
	return Querystring{}, false, fmt.Errorf("piccolo: %s: nil query", call)
}

// QueryFunc runs one statement and calls scan once per row (after
// rows.Next) while the connection is held. scan must not keep rows after
// it returns; a statement it runs in the same transaction returns
// ErrConnBusy (collect the rows first).
func (e *PostgresEngine) QueryFunc(ctx context.Context, q Query, scan func(pgx.Rows) error, opts ...Option) error {
	if scan == nil {
		return errors.New("piccolo: QueryFunc: nil scan function")
	}
	one, err := oneStatement("QueryFunc", q)
	if err != nil {
		return err
	}
	_, err = e.statement(ctx, "QueryFunc", opts, one, scan)
	return err
}

// statement runs q where route sends it; scan nil means the rows are not
// wanted. Its path reads one way: route picks the engine, onConn the
// connection (the context's transaction's, else a lease), runStatement
// runs q there.
func (e *PostgresEngine) statement(ctx context.Context, call string, opts []Option, q Querystring, scan func(pgx.Rows) error) (pgconn.CommandTag, error) {
	ro, err := collectRunOptions(call, opts, optNode, optRead)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	if err := checkSize(q); err != nil {
		return pgconn.CommandTag{}, err
	}
	scan, logRows := e.logScan(scan)
	use := connUse(0)
	if scan != nil {
		use = useScans
	}
	var tag pgconn.CommandTag
	err = e.route(ctx, ro, func(on *PostgresEngine) (bool, error) {
		if tx := on.txFrom(ctx); tx != nil {
			if err := refuseInTransaction(q.SQL); err != nil {
				return false, statementError(q.SQL, err)
			}
			if i, _, _ := sqltext.FirstControl(q.SQL, sqltext.TxSavepoint); i >= 0 {
				tx.c.noteHandSavepoint()
			}
		}
		r := &rider{q: q, scan: scan}
		err := on.onConn(ctx, use, r, func(ctx context.Context, conn *pgx.Conn) (err error) {
			r.tag, r.seen, err = runStatement(ctx, conn, q, scan)
			return err
		})
		tag = r.tag
		if err != nil {
			return r.seen > 0, statementError(q.SQL, err)
		}
		return false, nil
	})
	if err != nil {
		return tag, err
	}
	e.recordWrite(ctx, ro) // read-your-writes (readafter.go)
	if scan != nil {
		logRows(ctx)
	}
	return tag, nil
}

// CopyFrom copies rows into table with PostgreSQL's COPY protocol, the
// fastest way to load many rows, and returns how many it copied. It routes
// like Exec: inside the context's transaction if there is one, else to the
// primary or the node OnNode names. It takes OnNode only: Read and
// BatchSize are refused before any I/O (COPY writes; it has no batches). COPY
// returns no generated ids; use an INSERT ... RETURNING when you need them.
func (e *PostgresEngine) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource, opts ...Option) (int64, error) {
	ro, err := collectRunOptions("CopyFrom", opts, optNode)
	if err != nil {
		return 0, err
	}
	var n int64
	err = e.route(ctx, ro, func(on *PostgresEngine) (bool, error) {
		// src runs the caller's code.
		err := on.onConn(ctx, useScans, nil, func(ctx context.Context, conn *pgx.Conn) (err error) {
			n, err = conn.CopyFrom(ctx, table, columns, src)
			return err
		})
		if err != nil {
			return false, wrapErr("copy into "+table.Sanitize(), err)
		}
		return false, nil
	})
	if err == nil {
		e.recordWrite(ctx, ro) // read-your-writes (readafter.go)
	}
	return n, err
}

// maxMessage is PostgreSQL's limit on one protocol message (1 GB less a
// byte): a statement and its arguments travel in one.
const maxMessage = 1<<30 - 1

// checkSize refuses, before any copying or I/O, a statement that cannot
// fit in one protocol message: sending it would only cost seconds and
// gigabytes before pgx or the server refused it.
func checkSize(q Querystring) error {
	size := len(q.SQL)
	for _, a := range q.Args {
		switch a := a.(type) {
		case string:
			size += len(a)
		case []byte:
			size += len(a)
		}
	}
	if size > maxMessage {
		return fmt.Errorf("piccolo: statement too large: %d bytes of SQL and arguments, PostgreSQL takes at most %d in one message", size, maxMessage)
	}
	return nil
}

// statementError names the statement that failed, keeping the cause
// reachable. Errors of the engine's own (ErrTransactionDone...) pass as
// they are.
func statementError(sql string, err error) error {
	if errors.Is(err, ErrTransactionDone) || errors.Is(err, ErrUnknownNode) {
		return err
	}
	return &StatementError{SQL: sql, Err: err}
}
