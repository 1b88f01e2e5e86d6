package piccolo

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"runtime"
	"strconv"
	"sync"

	"github.com/jackc/pgx/v5"
)

// Batch streams the rows of one query through a server-side cursor,
// BatchSize rows per Next, so that memory stays constant whatever the size
// of the result. It is Piccolo's AsyncBatch.
//
// Inside a transaction the cursor lives on that transaction's connection
// and sees its uncommitted rows; outside, the batch borrows a connection and
// runs in a transaction of its own, committed by Close. Close (or the end of
// the rows, or leaving an All loop) closes the cursor and gives the
// connection back. A Batch is safe for concurrent use, one Next at a time.
//
// Outside a transaction, the first FETCH travels with the BEGIN and DECLARE
// that open the batch, in one round trip; its rows wait on the connection
// until the first Next reads them, under that Next's context, as it reads
// any FETCH.
//
// A Batch lives exactly as long as its cursor on the server. Opened in a
// NestSavepoint block that is then released, it goes on in the enclosing
// transaction; once the block rolls back (ROLLBACK TO closes the cursors
// opened after its savepoint) or the transaction ends, the cursor is gone
// and Next returns ErrTransactionDone. In the caller's transaction,
// whatever ends the batch (Close, a scan callback's error, an ended
// context) closes the cursor while the transaction can still run
// statements.
type Batch struct {
	engine *PostgresEngine
	tx     *PostgresTransaction
	own    bool   // the batch began tx and must end it
	cursor string // quoted, unique per engine
	fetch  string
	size   int

	mu        sync.Mutex
	formats   []int16     // opened in one pipeline: its columns' formats, so FETCH needs no describe (batchopen.go)
	first     *firstFetch // a batch of its own: its first FETCH while unread (batchopen.go)
	described string      // with formats: the query whose cached description gave them
	closed    bool
	exhausted bool            // closed because the rows ran out, not by Close
	read      bool            // run as a read (or OnNode): its COMMIT records no position (rule 7)
	reclaim   runtime.Cleanup // ends an own transaction the caller forgot
}

// Batch opens a cursor over q, which must render exactly one statement (a
// SELECT or VALUES). OnNode runs it on that node; BatchSize sets the rows
// per Next (default 100). The caller must Close the batch, or read it to
// the end.
func (e *PostgresEngine) Batch(ctx context.Context, q Query, opts ...Option) (*Batch, error) {
	ro, err := collectRunOptions("Batch", opts, optNode, optBatchSize, optRead)
	if err != nil {
		return nil, err
	}
	if ro.batchSize < 1 {
		return nil, fmt.Errorf("piccolo: BatchSize must be at least 1, got %d", ro.batchSize)
	}
	if q == nil {
		return nil, errors.New("piccolo: Batch: nil query")
	}
	qs, err := q.Querystrings()
	if err != nil {
		return nil, fmt.Errorf("piccolo: Batch: render query: %w", err)
	}
	if len(qs) != 1 {
		return nil, fmt.Errorf("piccolo: Batch needs exactly one statement, the query has %d", len(qs))
	}
	if err := checkSize(qs[0]); err != nil {
		return nil, err
	}
	var b *Batch
	err = e.route(ctx, ro, func(on *PostgresEngine) (bool, error) {
		b, err = on.openBatch(ctx, qs[0], ro.batchSize)
		return false, err
	})
	if err != nil {
		return nil, err
	}
	b.read = ro.read || ro.onNode
	return b, nil
}

// openBatch declares the cursor on e, in the context's transaction or in a
// transaction of the batch's own.
func (e *PostgresEngine) openBatch(ctx context.Context, q Querystring, size int) (*Batch, error) {
	b := &Batch{engine: e, size: size, tx: e.txFrom(ctx)}
	if b.tx == nil {
		var err error
		if _, b.tx, err = e.begin(ctx, txOptions{nesting: NestJoin, maxAttempts: 1}); err != nil {
			return nil, err
		}
		b.own, b.first = true, &firstFetch{}
		// A batch dropped without Close would hold its pooled connection
		// for ever: when the garbage collector finds it, roll back and
		// give the connection back, and say so.
		b.reclaim = runtime.AddCleanup(b, reclaimBatch, batchLeft{tx: b.tx, first: b.first})
	}
	b.cursor = `"piccolo_batch_` + strconv.FormatUint(e.cursorID.Add(1), 10) + `"`
	b.fetch = "FETCH FORWARD " + strconv.Itoa(size) + " FROM " + b.cursor
	declare := "DECLARE " + b.cursor + " NO SCROLL CURSOR FOR " + q.SQL
	handled, err := b.openInOne(ctx, q, declare)
	if !handled {
		err = b.tx.withConn(ctx, func(ctx context.Context, conn *pgx.Conn) error {
			// DescribeExec: a DECLARE is run once, so caching it as a
			// prepared statement would only fill the cache.
			_, err := conn.Exec(ctx, declare, append([]any{pgx.QueryExecModeDescribeExec}, q.Args...)...)
			return err
		})
	}
	if err != nil {
		if b.own {
			b.reclaim.Stop()
			_ = b.tx.abort(ctx, err)
		}
		return nil, statementError(declare, err)
	}
	return b, nil
}

// Next returns the next rows as maps from column name to value: at most
// BatchSize of them, and an empty slice once the rows have run out (the
// batch then closes itself). After Close it returns ErrBatchClosed. An
// error closes the batch: its own transaction rolls back, and in the
// caller's transaction its cursor is closed if that transaction is still
// usable.
func (b *Batch) Next(ctx context.Context) ([]map[string]any, error) {
	m := &mapRows{out: make([]map[string]any, 0, min(b.size, 1024))}
	if _, err := b.NextFunc(ctx, m.scan); err != nil {
		return nil, err
	}
	return m.out, nil
}

// NextFunc fetches the next rows and calls scan for each while the
// connection is held; it returns how many rows it fetched, 0 once they have
// run out. It is Next without the maps, for typed scanning.
func (b *Batch) NextFunc(ctx context.Context, scan func(pgx.Rows) error) (int, error) {
	if err := b.lock(ctx); err != nil {
		return 0, err
	}
	defer b.mu.Unlock()
	if b.closed {
		if b.exhausted {
			return 0, nil
		}
		return 0, ErrBatchClosed
	}
	n := 0
	scan, logRows := b.engine.logScan(scan)
	defer func() { logRows(ctx) }()
	tx := b.holder()
	if tx == nil {
		b.closed = true
		return 0, errCursorGone
	}
	// A cursor opened outside a savepoint block can be read inside it.
	err := tx.onConn(ctx, useScans|useCursor, nil, func(ctx context.Context, conn *pgx.Conn) error {
		if b.first != nil && b.first.p != nil {
			var err error
			n, err = b.first.read(ctx, b.engine, conn, b.fetch, scan)
			return err
		}
		if b.formats != nil {
			var err error
			n, err = b.fetchKnown(ctx, conn, scan)
			return err
		}
		rows, err := conn.Query(ctx, b.fetch, b.engine.fetchMode)
		if err != nil {
			return err
		}
		_, n, err = readRows(rows, scan)
		return err
	})
	return b.fetched(ctx, n, b.fetch, err)
}

// All returns an iterator over the batches of rows. Leaving the loop, by
// break, return, panic or the end of the rows, closes the batch; an error
// is yielded once, as the last value.
func (b *Batch) All(ctx context.Context) iter.Seq2[[]map[string]any, error] {
	return func(yield func([]map[string]any, error) bool) {
		defer func() {
			if err := b.Close(ctx); err != nil {
				// A loop that has ended has no way to receive the error.
				b.engine.logger.LogAttrs(ctx, slog.LevelWarn, "piccolo: closing batch after the loop ended", slog.String("error", err.Error()))
			}
		}()
		for {
			rows, err := b.Next(ctx)
			if err != nil {
				yield(nil, err)
				return
			}
			if len(rows) == 0 || !yield(rows, nil) {
				return
			}
		}
	}
}

// Close closes the cursor and, if the batch began its own transaction,
// commits it and gives the connection back. In the caller's transaction
// the CLOSE is sent even when ctx has ended (bounded by a cleanup
// timeout), unless that transaction failed or ended, which took the
// cursor with it. Close is idempotent. Next
// after Close returns ErrBatchClosed, or, once the rows had run out, an
// empty slice as before.
func (b *Batch) Close(ctx context.Context) error {
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.mu.Unlock()
	return b.closeLocked(ctx, nil)
}

// lock takes the batch's lock, one Next or Close at a time. Called from
// the batch's own NextFunc callback, which runs while its Next holds the
// lock, it returns ErrConnBusy instead of waiting for ever. (With the lock
// free, a call from another scan callback of the transaction, or from the
// goroutine reading a Querier's open rows, goes on, and the connection
// refuses it as any statement's.)
func (b *Batch) lock(ctx context.Context) error {
	if b.mu.TryLock() {
		return nil
	}
	if id := b.tx.c.scanner.Load(); id != 0 && id == callerID(ctx) {
		return errScanBusy
	}
	b.mu.Lock()
	return nil
}

// batchLeft is what the cleanup of a batch of its own that became garbage
// unclosed needs: its transaction, and its first FETCH if still unread.
type batchLeft struct {
	tx    *PostgresTransaction
	first *firstFetch
}

// reclaimBatch ends the transaction of a batch that became garbage
// before it was closed. The ROLLBACK is network I/O, so it runs on a
// goroutine of its own rather than on the runtime's cleanup goroutine.
func reclaimBatch(left batchLeft) {
	go func() {
		ctx, cancel := boundedContext(context.Background())
		defer cancel()
		left.tx.c.engine.logger.LogAttrs(ctx, slog.LevelWarn, "piccolo: a Batch was never closed; rolling back its transaction and releasing its connection (call Close, or read it to the end)")
		_ = left.first.drop(ctx)
		_ = left.tx.abort(ctx, errors.New("batch never closed"))
	}()
}

// errCursorGone is Next's error once the batch's cursor went with the
// transaction or savepoint block it was opened in.
var errCursorGone = fmt.Errorf("%w: the batch's cursor closed with the transaction or savepoint block it was opened in", ErrTransactionDone)

// holder returns the transaction the batch's cursor lives in now, or nil
// when the cursor is gone. A cursor outlives the block it was opened in
// when that block ends without rolling back (RELEASE SAVEPOINT keeps
// cursors; a joined block only finishes): it then belongs to the nearest
// enclosing block that is unfinished. ROLLBACK TO closes the cursors opened
// after the savepoint, and the end of the transaction closes them all.
func (b *Batch) holder() *PostgresTransaction {
	x := b.tx
	for txState(x.state.Load()) == txCommitted && x.parent != nil {
		x = x.parent
	}
	if txState(x.state.Load()) != txActive {
		return nil
	}
	return x
}

// closeLocked ends the batch; cause is the error that ended it, if any.
// In the caller's transaction it closes the cursor whenever that
// transaction can still run statements, whatever ended the batch (a scan
// callback's error, an ended context: the CLOSE runs with a cleanup
// context), so that no cursor outlives its Batch.
func (b *Batch) closeLocked(ctx context.Context, cause error) error {
	if b.closed {
		return nil
	}
	b.closed = true
	b.reclaim.Stop()
	if b.own {
		if err := b.first.drop(ctx); err != nil && cause == nil {
			// Closed before the first Next, whose FETCH failed: that
			// failure was the first Next's to report, and Next never
			// came. Roll back, quietly.
			_ = b.tx.abort(ctx, err)
			return nil
		}
		if cause != nil {
			return b.tx.abort(ctx, cause)
		}
		if b.read {
			ctx = withoutReadAfter(ctx) // a read records no position
		}
		// COMMIT closes the cursor too.
		if err := b.tx.Commit(ctx); err != nil {
			return wrapErr("close batch", err)
		}
		return nil
	}
	tx := b.holder()
	if tx == nil {
		return nil // the cursor went with its block or transaction
	}
	cleanup, cancel := cleanupContext(ctx)
	defer cancel()
	err := tx.onConn(cleanup, useCursor, nil, func(ctx context.Context, conn *pgx.Conn) error {
		if conn.IsClosed() || conn.PgConn().TxStatus() != 'T' {
			return nil // the transaction failed or is lost: its end removes the cursor
		}
		_, err := conn.Exec(ctx, "CLOSE "+b.cursor)
		return err
	})
	if err != nil && !errors.Is(err, ErrTransactionDone) {
		return wrapErr("close batch", err)
	}
	return nil
}
