package piccolo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/piccolo-go/piccolo"
)

// cutConn is a net.Conn that, once armed, closes itself right after it
// has written a message containing a pattern (COMMIT): the server gets the
// message, the client never hears the answer.
type cutConn struct {
	net.Conn
	armed *atomic.Pointer[[]byte]
	cut   chan<- struct{}
}

// NetConn lets the engine's liveness check see the socket: without it
// the engine cannot tell an idle connection whose session the server
// ended, and the soak's first statement after a kill could meet it.
func (c *cutConn) NetConn() net.Conn { return c.Conn }

func (c *cutConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if p := c.armed.Load(); p != nil && bytes.Contains(b, *p) && c.armed.CompareAndSwap(p, nil) {
		c.Conn.Close()
		c.cut <- struct{}{}
	}
	return n, err
}

// cutConns installs cutConn as pgx's DialFunc: arm it with the pattern
// after which the connection dies; cut receives once it did.
func cutConns(armed *atomic.Pointer[[]byte], cut chan<- struct{}) func(*pgxpool.Config) {
	return wrapDial(func(conn net.Conn) net.Conn { return &cutConn{Conn: conn, armed: armed, cut: cut} })
}

// commitCutEngine returns an engine of two connections, any of which
// dies right after it writes COMMIT once armCommit was called (cut then
// receives), and a direct engine with a table of its own.
func commitCutEngine(t *testing.T) (e, direct *piccolo.PostgresEngine, table string, armCommit func(), cut <-chan struct{}) {
	t.Helper()
	var armed atomic.Pointer[[]byte]
	cuts := make(chan struct{}, 1)
	commit := []byte("COMMIT\x00")
	e = newEngine(t, true, piccolo.PostgresConfig{MaxConns: 2, Configure: cutConns(&armed, cuts)})
	direct = newEngine(t, false, piccolo.PostgresConfig{})
	return e, direct, newTable(t, direct), func() { armed.Store(&commit) }, cuts
}

// Scenario 6: the connection dies after COMMIT was sent. A net.Conn
// wrapper, installed with PostgresConfig.Configure as pgx's DialFunc,
// closes the socket right after writing COMMIT: the server commits, the
// client never hears.
//
// The engine once reported ErrCommitRolledBack here, trusting pgx's
// "safe to retry" on the failed read after COMMIT was written; now, once
// COMMIT was handed to a live connection, only a server error or a
// ROLLBACK tag means rolled back, and anything else is ErrAmbiguousCommit.
func TestFaultConnectionLostAfterCommitSent(t *testing.T) {
	t.Parallel()
	e, direct, table, armCommit, cut := commitCutEngine(t)
	bg := context.Background()

	calls := 0
	err := e.Transaction(bg, func(ctx context.Context) error {
		calls++
		mustInsert(t, ctx, e, table, fmt.Sprint("attempt ", calls))
		armCommit()
		return nil
	}, piccolo.Retry(5), piccolo.Isolation(piccolo.Serializable))
	select {
	case <-cut:
	default:
		t.Fatalf("COMMIT never went through the wrapper (err %v)", err)
	}
	// Why it must not be called a rollback, nor retried: the server did
	// commit.
	eventually(t, "the ambiguous commit's row", func() error {
		if got := names(t, direct, table); len(got) != 1 || got[0] != "attempt 1" {
			return fmt.Errorf("rows %v", got)
		}
		return nil
	})
	if !errors.Is(err, piccolo.ErrAmbiguousCommit) {
		t.Fatalf("connection lost after COMMIT was sent: %v, want ErrAmbiguousCommit", err)
	}
	if errors.Is(err, piccolo.ErrCommitRolledBack) || piccolo.IsRetryable(err) {
		t.Fatalf("an ambiguous commit must be neither a rollback nor retryable: %v", err)
	}
	if calls != 1 {
		t.Fatalf("the closure ran %d times: an ambiguous commit was retried", calls)
	}

	// By hand: Commit says the same, and the handle is neither committed
	// nor rolled back.
	ctx, tx := mustBegin(t, e)
	mustInsert(t, ctx, e, table, "by hand")
	armCommit()
	if err := tx.Commit(ctx); !errors.Is(err, piccolo.ErrAmbiguousCommit) {
		t.Fatalf("Commit: %v, want ErrAmbiguousCommit", err)
	}
	<-cut
	if tx.Committed() || tx.RolledBack() {
		t.Fatalf("after an ambiguous commit: Committed %v RolledBack %v, want neither", tx.Committed(), tx.RolledBack())
	}
	if err := tx.Rollback(bg); !errors.Is(err, piccolo.ErrTransactionDone) {
		t.Fatalf("Rollback after an ambiguous commit: %v, want ErrTransactionDone", err)
	}
	faultStillWorks(t, e, table)
}
