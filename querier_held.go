package piccolo

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// This file keeps a connection for the Querier's results after the call
// that opened them returned: rows and batch results are read by the caller
// between calls, and the connection (the transaction's turn, or a lease)
// must stay theirs until they are closed.

// held is a connection kept for results the caller reads: a goroutine of
// its own has taken it through route and onConn, like any statement, and
// gives it back once close is called.
type held struct {
	release chan struct{} // closed by close: give the connection back
	done    chan error    // the outcome of the route, once the connection is back
	once    sync.Once
	closed  atomic.Bool // err is set
	err     error
}

// openFunc starts work on conn whose results the caller reads; finish
// ends it (closing the results) once the caller is done, and returns its
// error.
type openFunc func(ctx context.Context, conn *pgx.Conn) (finish func() error, err error)

// hold runs open where ctx routes the statements sqls (refused inside a
// transaction when they would begin or end it) and keeps that connection
// until the returned held is closed. The connection is taken and given
// back by a goroutine of its own, through route and onConn like every
// statement, so the routing rules stay written once; the caller's
// goroutine uses the connection only between hold returning and close,
// while that goroutine waits.
//
// Inside a transaction, while the results are open, the caller's goroutine
// counts as the one reading them: a statement it runs on the same
// transaction returns ErrConnBusy (txConn.lock) instead of waiting for its
// own results for ever.
func (q *Querier) hold(ctx context.Context, call string, sqls []string, open openFunc) (*held, error) {
	ro, err := collectRunOptions(call, q.options(ctx), optRead)
	if err != nil {
		return nil, err
	}
	var reader uint64
	if q.e.txFrom(ctx) != nil {
		// The goroutine below takes the turn for this one: when this
		// one's own open results hold it, that is ErrConnBusy, not a wait
		// for ever (rule 13).
		reader = goroutineID()
		ctx = withCaller(ctx, reader)
	}
	text := statementsText(sqls)
	h := &held{release: make(chan struct{}), done: make(chan error, 1)}
	opened := make(chan struct{}, 1)
	go func() {
		handedAny := false
		err := q.e.route(ctx, ro, func(on *PostgresEngine) (bool, error) {
			tx := on.txFrom(ctx)
			if tx != nil {
				for _, sql := range sqls {
					if err := refuseInTransaction(sql); err != nil {
						return false, statementError(sql, err)
					}
				}
			}
			handed := false
			err := on.onConn(ctx, useScans, nil, func(ctx context.Context, conn *pgx.Conn) error {
				finish, err := open(ctx, conn)
				if err != nil {
					return err
				}
				if tx != nil {
					tx.c.scanner.Store(reader) // onConn clears it when done
					tx.c.results.Store(h)
					defer tx.c.results.Store(nil)
				}
				handed, handedAny = true, true
				opened <- struct{}{}
				<-h.release
				return finish()
			})
			if err != nil {
				return handed, statementError(text, err)
			}
			return false, nil
		})
		if err == nil {
			q.e.recordWrite(ctx, ro) // read-your-writes (readafter.go)
		}
		h.done <- err
		if !handedAny {
			close(opened)
		}
	}()
	if _, ok := <-opened; !ok {
		return nil, <-h.done
	}
	return h, nil
}

// close gives the connection back, once, and returns the outcome: the
// results' error, or the end of the transaction's use of the connection.
func (h *held) close() error {
	h.once.Do(func() {
		close(h.release)
		h.err = <-h.done
		h.closed.Store(true)
	})
	return h.err
}

// closeOwnResults closes the Querier results open on the transaction when
// the calling goroutine is the one reading them, giving the turn back, and
// reports whether it did. Ending a transaction calls it when the turn is
// its own goroutine's: rows or batch results the closure left open would
// otherwise hold the connection for ever.
func (c *txConn) closeOwnResults() bool {
	h := c.results.Load()
	if h == nil || c.scanner.Load() != goroutineID() {
		return false
	}
	_ = h.close()
	return true
}

// heldRows are rows from Querier.Query that give their connection back when
// closed, or when Next returns false.
type heldRows struct {
	pgx.Rows
	h *held
}

// Next advances to the next row; at the end, or on an error, it closes the
// rows, giving the connection back.
func (r *heldRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

// Close closes the rows and gives the connection back. It is idempotent.
func (r *heldRows) Close() { _ = r.h.close() }

// Err returns the error met while reading the rows; once they are closed,
// it is the statement's outcome, naming the statement (and the node).
func (r *heldRows) Err() error {
	if r.h.closed.Load() {
		return r.h.err
	}
	return r.Rows.Err()
}

// firstRow is the pgx.Row of Querier.QueryRow.
type firstRow struct {
	rows pgx.Rows
	err  error
}

// Scan reads the first row into dest and closes the rows; pgx.ErrNoRows
// when there is none.
func (r firstRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

// heldBatch are the results of Querier.SendBatch, which give their
// connection back when closed.
type heldBatch struct {
	pgx.BatchResults
	h *held
}

// Close reads what is left of the batch's results, gives the connection
// back and returns the first error met. It is idempotent.
func (b *heldBatch) Close() error { return b.h.close() }

// failedBatch are the results of a batch that could not be sent: every
// call returns why.
type failedBatch struct{ err error }

func (b failedBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, b.err }
func (b failedBatch) Query() (pgx.Rows, error)         { return nil, b.err }
func (b failedBatch) QueryRow() pgx.Row                { return firstRow{err: b.err} }
func (b failedBatch) Close() error                     { return b.err }
func (b failedBatch) Tx() pgx.Tx                       { return nil }
