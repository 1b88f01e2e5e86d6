package piccolo

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// Savepoint is a point inside a transaction to roll back to without
// losing the work done before it.
//
// Savepoints are the connection's, not a block's, and form a stack, as in
// PostgreSQL: rolling back to or releasing a savepoint also destroys every
// savepoint created after it, NestSavepoint blocks' included (their later
// rollback then fails, and the transaction becomes rollback-only). The
// caller manages savepoint handles by name, as in Piccolo: roll back to or
// release only savepoints created inside the block that uses them, and do
// not share one between goroutines that run blocks of their own. While a
// NestSavepoint block is open, creating, rolling back to or releasing a
// savepoint through a handle outside that block fails with ErrConnBusy.
type Savepoint struct {
	tx     *PostgresTransaction
	name   string
	quoted string
}

// Name returns the savepoint's name, as given or generated.
func (s *Savepoint) Name() string { return s.name }

// Savepoint creates a savepoint. An empty name generates savepoint_1,
// savepoint_2...; other names must be letters, digits and underscores, not
// starting with a digit, at most 63 bytes (ErrInvalidSavepointName). The
// SAVEPOINT statement is sent just before the next statement of the
// transaction. In a transaction a failed statement aborted, the server
// refuses it (25P02) and the savepoint never exists: RollbackTo to it then
// fails with 3B001; roll back to a savepoint made before the failure.
func (t *PostgresTransaction) Savepoint(ctx context.Context, name string) (*Savepoint, error) {
	if name != "" {
		if err := validSavepointName(name); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := t.c
	if err := t.lockUsable(); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	if err := t.insideTopLocked(); err != nil {
		return nil, err
	}
	if name == "" {
		name = c.nextSavepointName()
	} else {
		if c.named == nil {
			c.named = map[string]bool{}
		}
		c.named[name] = true
	}
	quoted := `"` + name + `"` // validated or generated: nothing to escape
	c.pending = append(c.pending, "SAVEPOINT "+quoted)
	return &Savepoint{tx: t, name: name, quoted: quoted}, nil
}

// RollbackTo undoes everything since the savepoint was created; the
// savepoint stays, so RollbackTo can be called again.
func (s *Savepoint) RollbackTo(ctx context.Context) error {
	return s.tx.exec(ctx, "ROLLBACK TO SAVEPOINT "+s.quoted)
}

// Release forgets the savepoint, keeping the work done since it.
func (s *Savepoint) Release(ctx context.Context) error {
	return s.tx.exec(ctx, "RELEASE SAVEPOINT "+s.quoted)
}

// RollbackTo rolls back to the savepoint called name (see Savepoint for the
// rules names follow).
func (t *PostgresTransaction) RollbackTo(ctx context.Context, name string) error {
	if err := validSavepointName(name); err != nil {
		return err
	}
	return t.exec(ctx, `ROLLBACK TO SAVEPOINT "`+name+`"`)
}

// exec runs one of the transaction's own statements on its connection:
// a savepoint statement by hand.
func (t *PostgresTransaction) exec(ctx context.Context, sql string) error {
	t.c.noteHandSavepoint()
	err := t.withConn(ctx, func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, sql)
		return err
	})
	if err != nil {
		return &StatementError{SQL: sql, Err: err}
	}
	return nil
}
