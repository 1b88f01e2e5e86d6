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
