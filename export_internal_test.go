package piccolo

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// ExecAroundChecks sends sql on the connection of the context's
// transaction without the engine's checks: the way a procedure or a driver
// bypass might end a transaction behind the engine's back, which the
// engine refuses to let a statement do. Tests use it to pin what happens
// then.
func ExecAroundChecks(ctx context.Context, e *PostgresEngine, sql string) error {
	return e.txFrom(ctx).withConn(ctx, func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, sql)
		return err
	})
}

// BackendPID returns the process id of the server backend behind the
// connection of tx's transaction, without sending anything; 0 once the
// transaction has given its connection back.
func BackendPID(tx *PostgresTransaction) uint32 {
	c := tx.c
	if err := c.lock(context.Background()); err != nil {
		return 0
	}
	defer c.unlock()
	if c.conn == nil {
		return 0
	}
	return c.conn.PgConn().PID()
}

// BackendEnded reports whether the server has ended the session behind
// the connection of tx's transaction: its FATAL error or the end of the
// stream waits in the socket. It reads nothing, so the engine meets the
// end as it would have.
func BackendEnded(tx *PostgresTransaction) bool {
	c := tx.c
	if err := c.lock(context.Background()); err != nil {
		return false
	}
	defer c.unlock()
	return c.conn == nil || c.conn.IsClosed() || socketPending(c.conn.PgConn())
}
