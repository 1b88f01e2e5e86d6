package piccolo

import (
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5/stdlib"
)

// DB returns a *sql.DB that borrows its connections from the engine's
// running pool (pgx's stdlib.OpenDBFromPool), for tools written against
// database/sql: migration runners such as goose, schema checkers, admin
// scripts. Its statements are logged and traced like the engine's (they
// run on the pool's connections), but they are not routed by the context:
// DB is not transaction-aware, and a statement through it never joins the
// context's transaction. database/sql has transactions of its own
// (sql.DB.BeginTx). Migration tools take session advisory locks: point
// them at the primary, never at PgBouncer in transaction pooling mode.
//
// The *sql.DB keeps no idle connections of its own (the pool manages
// them), and closing it does not close the engine's pool. It stops working
// when the pool closes (CloseConnectionPool, Close). DB returns
// ErrEngineClosed after Close and ErrNoPool when no pool is running (before
// StartConnectionPool, after CloseConnectionPool): without a pool there is
// nothing to share.
func (e *PostgresEngine) DB() (*sql.DB, error) {
	if e.closed.Load() {
		return nil, ErrEngineClosed
	}
	p := e.pool.Load()
	if p == nil {
		return nil, fmt.Errorf("%w: DB shares the engine's pool; call StartConnectionPool first", ErrNoPool)
	}
	return stdlib.OpenDBFromPool(p), nil
}
