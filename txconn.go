package piccolo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// txConn is the connection of an outermost transaction, shared by every
// block nested in it. Two locks guard it:
//
//   - the turn (sem) serialises the goroutines that share the transaction's
//     context on the connection (pgx connections are not safe for
//     concurrent use); waiting for it honours the waiter's context. Every
//     use of conn and lease holds it.
//   - mu guards the bookkeeping: pending statements, savepoint names, the
//     stack of savepoint blocks, each handle's rollback-only cause and
//     hooks. It is never held during I/O, so registering a hook, opening a
//     block or asking TransactionExists never waits for a statement.
type txConn struct {
	engine *PostgresEngine
	sem    chan struct{} // the turn: holding it is having sent into it
	// scanner is the id of the goroutine running scan callbacks while it
	// holds the turn, or reading a Querier's open results (querier_held.go),
	// else 0 (see lock).
	scanner atomic.Uint64
	// results are a Querier's open rows or batch results, which hold the
	// turn for the goroutine scanner names, else nil (querier_held.go).
	results atomic.Pointer[held]

	conn  *pgx.Conn // lease.conn until the transaction ends, then nil
	lease lease

	// hookMu guards every block's hooks. It is taken alone (registering a
	// hook) or inside mu (ending a block), never the other way round.
	hookMu sync.Mutex

	mu sync.Mutex
	// pending holds BEGIN and SAVEPOINT statements not sent yet: they go
	// out with the next statement (see flushLocked), so a transaction that
	// runs nothing costs no round trip. A flush is sending the first
	// inFlight of them.
	pending    []string
	inFlight   int
	begun      bool            // BEGIN has reached the server
	savepoints int             // numbers generated savepoint names
	named      map[string]bool // savepoint names the caller chose, which generated names avoid
	// top is the innermost open NestSavepoint block, or the root: savepoint
	// blocks form a stack, a new one may open only inside top, and
	// statements run only through handles inside top.
	top *PostgresTransaction
	// open holds the nested blocks opened so far, in order, less some that
	// have ended: ending a block ends the open ones nested in it.
	open []*PostgresTransaction
	// traced holds the blocks a TxTracer was told opened and not yet that
	// they ended (txtrace.go).
	traced []*PostgresTransaction
	// endedBySQL is set when a statement sent as SQL (COMMIT, ROLLBACK)
	// ended the transaction behind the engine's back.
	endedBySQL bool
	// handSavepoints counts the savepoint statements run by hand
	// (RollbackTo, Release, SQL): one may have destroyed a savepoint block's
	// savepoint, whose RELEASE then fails, so that block sends it at once
	// (see deferReleaseLocked).
	handSavepoints int

	// readOnly: the transaction was started with ReadOnly, so a 25006 in
	// it is its own. metReadOnly: a statement of a transaction not started
	// so met a 25006 (held under the turn); its end asks the node whether
	// it turned read-only (see settleReadOnly), and sets demoted if so.
	readOnly    bool
	metReadOnly bool
	demoted     atomic.Bool
}

func newTxConn(e *PostgresEngine, l lease, begin string) *txConn {
	return &txConn{engine: e, sem: make(chan struct{}, 1), conn: l.conn, lease: l, pending: []string{begin}}
}

// lock takes the turn, giving up when ctx ends first (context.Background
// waits as long as it takes). A scan callback calling back into its own
// transaction gets ErrConnBusy instead of waiting for itself for ever.
func (c *txConn) lock(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
		return nil
	default:
	}
	if id := c.scanner.Load(); id != 0 && id == callerID(ctx) {
		return errScanBusy
	}
	select {
	case c.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("piccolo: waiting for the transaction's connection: %w", ctx.Err())
	}
}

func (c *txConn) unlock() { <-c.sem }

// errScanBusy is why a scan callback, or the goroutine reading a
// Querier's open rows or batch results, cannot use its own transaction.
var errScanBusy = fmt.Errorf("%w: its rows are being read on this goroutine (a scan callback, or a Querier's rows or batch results not closed yet); collect the rows first, or close them", ErrConnBusy)

// goroutineID returns the calling goroutine's id, parsed from the
// "goroutine N [running]" header of its stack trace. Go has no API for it,
// on purpose; the engine uses it for one thing only: telling a scan
// callback that calls back into its own transaction (which would wait for
// the connection its own goroutine holds: a self-deadlock) from another
// goroutine that should wait its turn. It is read only while scan
// callbacks run and compared only when the turn is contended.
func goroutineID() uint64 {
	var buf [64]byte
	b := bytes.TrimPrefix(buf[:runtime.Stack(buf[:], false)], []byte("goroutine "))
	var id uint64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			break
		}
		id = id*10 + uint64(ch-'0')
	}
	return id
}

// callerKey is the context key of the goroutine a call runs for, when
// another goroutine runs it (a Querier's rows: see Querier.hold).
type callerKey struct{}

// callerID returns the id of the goroutine ctx's call runs for: the one
// withCaller recorded, else the calling goroutine.
func callerID(ctx context.Context) uint64 {
	if id, ok := ctx.Value(callerKey{}).(uint64); ok {
		return id
	}
	return goroutineID()
}

// withCaller returns ctx recording that its call runs for goroutine id.
func withCaller(ctx context.Context, id uint64) context.Context {
	return context.WithValue(ctx, callerKey{}, id)
}

// nextSavepointName generates savepoint_1, savepoint_2..., skipping names
// the caller chose (PostgreSQL resolves a name to its newest savepoint).
// The caller holds mu.
func (c *txConn) nextSavepointName() string {
	for {
		c.savepoints++
		name := fmt.Sprintf("savepoint_%d", c.savepoints)
		if !c.named[name] {
			return name
		}
	}
}

// connUse says what a turn on the connection is for.
type connUse uint8

const (
	// useScans: the work calls the caller's scan callbacks (QueryFunc,
	// Batch.NextFunc, a CopyFromSource); a callback that runs a statement in
	// its own transaction gets ErrConnBusy instead of a hang.
	useScans connUse = 1 << iota
	// useCursor: the work only moves (FETCH) or closes (CLOSE) a cursor
	// opened earlier. It may run through a handle outside the innermost open
	// savepoint block: ROLLBACK TO undoes neither cursor motion nor CLOSE.
	// (It does undo what volatile functions in the cursor's query wrote
	// while a FETCH ran inside the block; Batch queries are SELECTs.)
	useCursor
)

// withConn runs fn on the transaction's connection after sending pending
// statements, holding the turn so that goroutines take turns.
func (t *PostgresTransaction) withConn(ctx context.Context, fn connFunc) error {
	return t.onConn(ctx, 0, nil, fn)
}

// onConn is withConn for the use use. r, when not nil, is the statement fn
// runs: when pending statements are to be sent and r can ride with them
// (see ride), it runs in their pipeline instead, and fn is not called.
func (t *PostgresTransaction) onConn(ctx context.Context, use connUse, r *rider, fn connFunc) error {
	c := t.c
	if err := c.lock(ctx); err != nil {
		return err
	}
	defer c.unlock()
	if use&useScans != 0 {
		c.scanner.Store(goroutineID())
		defer c.scanner.Store(0)
	}
	rode, err := t.flushLocked(ctx, use, r)
	if err != nil && !rode {
		return c.failed(ctx, err)
	}
	if !rode {
		err = fn(ctx, c.conn)
	}
	c.checkEndedLocked()
	return c.failed(ctx, err)
}

// failed passes err, the outcome of work on the transaction's connection,
// through the engine's rule for failed connections (connFailed), and notes
// a 25006 met by a transaction not started ReadOnly, for its end to settle
// (settleReadOnly). The caller holds the turn.
func (c *txConn) failed(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if !c.readOnly && readOnlySQL(err) {
		c.metReadOnly = true
	}
	return c.engine.connFailed(ctx, c.conn, err)
}

// settleReadOnly runs when the root ends, before its connection is given
// back (idle, after its ROLLBACK): when a statement met a 25006 it did not
// ask for, it evicts the connection if its node turned read-only (see
// evictIfReadOnly) and records that in demoted. The caller holds the turn.
func (c *txConn) settleReadOnly(ctx context.Context) {
	if c.metReadOnly && c.engine.evictIfReadOnly(ctx, c.conn) {
		c.demoted.Store(true)
	}
}

// checkEndedLocked notices a transaction that a statement sent as SQL
// (COMMIT, ROLLBACK) ended on the server: from then on the engine refuses
// statements instead of letting them run in autocommit. The caller holds
// the turn.
func (c *txConn) checkEndedLocked() {
	ended := c.conn.PgConn().TxStatus() == 'I' && !c.conn.IsClosed()
	c.mu.Lock()
	if ended && c.begun {
		c.endedBySQL = true
	}
	c.mu.Unlock()
}

// flushLocked checks that statements may run through t (for use) and sends
// pending BEGIN and SAVEPOINT statements, before the statement that needs
// them: with r in one pipeline when r can ride (rode then reports that r
// ran, or failed on the server), else alone, in one round trip. Nothing is
// half-sent: r rides only once described and encoded, so a statement that
// fails to parse or encode still finds them sent, as PostgreSQL's own
// transaction rules expect. The caller holds the turn.
//
// The check and the choice of what to send are one step under mu: a block
// whose SAVEPOINT is being sent can end only with the turn (see
// endWithoutIO). Pending statements are dropped only once the server has
// them (see delivered); SAVEPOINTs the server refused because the
// transaction was already aborted never existed, and the blocks they opened
// are marked refused (rule 12 of txend.go).
func (t *PostgresTransaction) flushLocked(ctx context.Context, use connUse, r *rider) (rode bool, err error) {
	c := t.c
	stmts, withBegin, err := t.takePending(use)
	if err != nil || len(stmts) == 0 {
		return false, err
	}
	if r != nil {
		var handled bool
		if rode, handled, err = c.ride(ctx, stmts, withBegin, r); handled {
			return rode, err
		}
	}
	return false, c.sendPending(ctx, stmts, withBegin)
}

// takePending checks that statements may run through t (for use) and
// returns the pending statements to send, marked in flight.
func (t *PostgresTransaction) takePending(use connUse) (stmts []string, withBegin bool, err error) {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	err = t.usableLocked()
	if err == nil && use&useCursor == 0 {
		err = t.insideTopLocked()
	}
	if err != nil {
		return nil, false, err
	}
	stmts = c.pending[:len(c.pending):len(c.pending)]
	c.inFlight = len(stmts)
	return stmts, !c.begun, nil
}

// sendPending sends stmts, the pending statements, alone in one round
// trip.
func (c *txConn) sendPending(ctx context.Context, stmts []string, withBegin bool) error {
	sql := strings.Join(stmts, "; ")
	_, err := c.conn.Exec(ctx, sql)
	if err != nil && withBegin {
		// A session that ended before the transaction began is replaced:
		// BEGIN and SAVEPOINT have no effect outside it, however far they
		// got (see replaceEnded).
		var replaced bool
		if replaced, err = c.engine.replaceEnded(ctx, &c.lease, err); replaced {
			c.conn = c.lease.conn
			_, err = c.conn.Exec(ctx, sql)
		}
	}
	return c.delivered(stmts, withBegin, err)
}

// delivered settles stmts, the pending statements in flight, after err,
// the outcome of sending them: they are dropped only once the server has
// them: they ran, the server answered with an error, or the connection
// closed (taking the transaction with it). A failure before any I/O (an
// ended context) keeps them for the next statement. It returns err, saying
// what failed.
func (c *txConn) delivered(stmts []string, withBegin bool, err error) error {
	var pgErr *pgconn.PgError
	delivered := err == nil || errors.As(err, &pgErr) || c.conn.IsClosed()
	c.mu.Lock()
	c.inFlight = 0
	if delivered {
		c.pending = c.pending[len(stmts):]
		c.begun = c.begun || withBegin
		if !withBegin && pgErr != nil && pgErr.Code == pgerrcode.InFailedSQLTransaction {
			// The transaction was already aborted: the server ran none of
			// stmts, so their savepoints never existed (rule 12).
			c.refuseLocked(stmts, err)
		}
	}
	c.mu.Unlock()
	if err != nil {
		what := "savepoint"
		if withBegin {
			what = "begin"
		}
		return wrapErr(what, err)
	}
	return nil
}
