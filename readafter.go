package piccolo

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// LSN is a position in PostgreSQL's write-ahead log (a pg_lsn), as
// pg_current_wal_insert_lsn() and pg_last_wal_replay_lsn() report it. Zero
// means none. Its String form ("16/B374D848") is PostgreSQL's and what
// ParseLSN reads, to carry a position between processes (a cookie, a
// header).
type LSN uint64

// String returns l as PostgreSQL writes a pg_lsn.
func (l LSN) String() string {
	return fmt.Sprintf("%X/%X", uint64(l)>>32, uint32(l))
}

// ParseLSN reads a position written as PostgreSQL writes a pg_lsn.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, herr := strconv.ParseUint(hi, 16, 32)
	l, lerr := strconv.ParseUint(lo, 16, 32)
	if !ok || herr != nil || lerr != nil {
		return 0, fmt.Errorf("piccolo: parse LSN %q: want two hexadecimal numbers of up to 8 digits joined by /", s)
	}
	return LSN(h<<32 | l), nil
}

// lsnUnknown is the position of a context whose commit position could not
// be read: its reads go to the primary (rule 7).
const lsnUnknown = LSN(math.MaxUint64)

type readAfterKey struct{}

// readAfter is the position that routed reads under a context must see;
// commits under the context raise it.
type readAfter struct{ lsn atomic.Uint64 }

func (r *readAfter) raise(l LSN) {
	for {
		old := r.lsn.Load()
		if uint64(l) <= old || r.lsn.CompareAndSwap(old, uint64(l)) {
			return
		}
	}
}

// WithReadYourWrites returns a context under which routed reads see the
// transactions committed under it: each root transaction's Commit (and so
// Transaction's and Atomic's) records the end of the primary's WAL after
// its COMMIT, read in COMMIT's own pipeline, and a routed read goes only to
// a node whose replay has reached the highest position recorded, else to
// the primary (routing rules 6 and 7 at the top of replicas.go). The
// position lives in the context and every context derived from it, so
// commits inside nested calls count; ReadAfter returns it to pass on.
//
// A statement, CopyFrom or Querier call run outside a transaction on the
// primary, not as a read, records the position too, with one more round
// trip (a transaction's COMMIT, an Atomic's included, carries it for
// free). Reads, OnNode and statements
// inside a transaction record nothing; a statement that fails records
// nothing either (outside a transaction it committed nothing). Without
// ReadRouting the context changes nothing but what is recorded.
func WithReadYourWrites(ctx context.Context) context.Context {
	return WithReadAfter(ctx, 0)
}

// WithReadAfter is WithReadYourWrites starting from position after, such
// as ReadAfter returned in another request or process. When ctx already
// carries a position, that one is raised to after (never lowered) and ctx
// is returned as is.
func WithReadAfter(ctx context.Context, after LSN) context.Context {
	if r := readAfterFrom(ctx); r != nil {
		r.raise(after)
		return ctx
	}
	r := &readAfter{}
	r.lsn.Store(uint64(after))
	return context.WithValue(ctx, readAfterKey{}, r)
}

// ReadAfter returns the position that routed reads under ctx must see:
// zero when ctx carries none or nothing committed under it yet, and the
// maximum LSN when a commit's position could not be read (reads then go
// to the primary).
func ReadAfter(ctx context.Context) LSN {
	if r := readAfterFrom(ctx); r != nil {
		return LSN(r.lsn.Load())
	}
	return 0
}

func readAfterFrom(ctx context.Context) *readAfter {
	r, _ := ctx.Value(readAfterKey{}).(*readAfter)
	return r
}

// commitPosition reads the end of the WAL after COMMIT: the insert
// position, which covers the commit record even before it is flushed
// (with synchronous_commit off).
const commitPosition = "SELECT pg_current_wal_insert_lsn()::text"

// commit sends COMMIT on c's connection, and under a context that tracks
// read-your-writes reads the WAL position after it in the same pipeline
// and records it (rule 7). Its result is COMMIT's.
func (c *txConn) commit(ctx context.Context) (pgconn.CommandTag, error) {
	r := readAfterFrom(ctx)
	if r == nil {
		return c.engine.traced(ctx, c.conn, "COMMIT", nil, func() (pgconn.CommandTag, error) { return sendCommit(ctx, c.conn) })
	}
	after := newPositionAfter()
	ps := []*piped{bare("COMMIT"), after.read}
	ran, _, err := c.engine.sendPipeline(ctx, c.conn, ps)
	if ran == 0 {
		return ps[0].tag, err // COMMIT's own outcome
	}
	after.record(r, ps[0].tag, ran == len(ps) && err == nil)
	return ps[0].tag, nil
}

// positionAfter reads the WAL position in a pipeline, right after its
// COMMIT.
type positionAfter struct {
	text string
	read *piped
}

func newPositionAfter() *positionAfter {
	p := &positionAfter{}
	p.read = &piped{sql: commitPosition, scan: func(rows pgx.Rows) error { return rows.Scan(&p.text) }}
	return p
}

// record raises r to the position read, when commit, COMMIT's tag, says
// the transaction committed; ran reports whether the read ran. A position
// that could not be read is recorded as unknown (rule 7: reads then go to
// the primary).
func (p *positionAfter) record(r *readAfter, commit pgconn.CommandTag, ran bool) {
	if commit.String() != "COMMIT" {
		return
	}
	l, err := ParseLSN(p.text)
	if !ran || err != nil || p.read.scanErr != nil {
		l = lsnUnknown
	}
	r.raise(l)
}

// recordWrite records the WAL position after a statement or CopyFrom that
// succeeded outside a transaction on the primary, not as a read, under a
// context that tracks read-your-writes: one more round trip (rule 7). A
// server in recovery (an engine that is a standby, used directly) wrote
// nothing, and nothing is recorded.
func (e *PostgresEngine) recordWrite(ctx context.Context, ro runOptions) {
	r := readAfterFrom(ctx)
	if r == nil || ro.read || ro.onNode || e.txFrom(ctx) != nil {
		return
	}
	l := lsnUnknown
	err := e.withLease(ctx, func(ctx context.Context, conn *pgx.Conn) error {
		var text string
		_, err := e.traced(ctx, conn, commitPosition, nil, func() (pgconn.CommandTag, error) {
			res := conn.PgConn().ExecParams(ctx, commitPosition, nil, nil, nil, nil)
			for res.NextRow() {
				text = string(res.Values()[0])
			}
			return res.Close()
		})
		if err == nil {
			l, err = ParseLSN(text)
		}
		return err
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.ObjectNotInPrerequisiteState {
		return // recovery is in progress: nothing was written here
	}
	if err != nil {
		l = lsnUnknown
	}
	r.raise(l)
}

// withoutReadAfter returns ctx without the position it carries, for the
// engine's own statements.
func withoutReadAfter(ctx context.Context) context.Context {
	if readAfterFrom(ctx) == nil {
		return ctx
	}
	return context.WithValue(ctx, readAfterKey{}, (*readAfter)(nil))
}
