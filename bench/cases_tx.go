package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/piccolo-go/piccolo"
	"github.com/uptrace/bun"
	"gorm.io/gorm"
)

// repeat runs fn n times, stopping at the first error.
func repeat(n int, fn func(j int) error) error {
	for j := range n {
		if err := fn(j); err != nil {
			return err
		}
	}
	return nil
}

// op is a case's i-th operation.
type op = func(ctx context.Context, i int) error

// inPgxTx runs body in a transaction begun on r.
func inPgxTx(r pgxRunner, body func(ctx context.Context, tx pgx.Tx, i int) error) op {
	return func(ctx context.Context, i int) error {
		return pgx.BeginFunc(ctx, r, func(tx pgx.Tx) error { return body(ctx, tx, i) })
	}
}

// inSQLTx runs body in a database/sql transaction on db.
func inSQLTx(db *sql.DB, body func(ctx context.Context, tx *sql.Tx, i int) error) op {
	return func(ctx context.Context, i int) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck // after Commit it only reports ErrTxDone
		if err := body(ctx, tx, i); err != nil {
			return err
		}
		return tx.Commit()
	}
}

// inGormTx runs body in a GORM transaction on g.
func inGormTx(g *gorm.DB, body func(ctx context.Context, tx *gorm.DB, i int) error) op {
	return func(ctx context.Context, i int) error {
		return g.WithContext(ctx).Transaction(func(tx *gorm.DB) error { return body(ctx, tx, i) })
	}
}

// inBunTx runs body in a Bun transaction on db.
func inBunTx(db *bun.DB, body func(ctx context.Context, tx bun.Tx, i int) error) op {
	return func(ctx context.Context, i int) error {
		return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error { return body(ctx, tx, i) })
	}
}

// inPiccoloTx runs body in a piccolo-go transaction on p's engine.
func inPiccoloTx(p *peers, body func(ctx context.Context, i int) error) op {
	return func(ctx context.Context, i int) error {
		return p.engine.Transaction(ctx, func(ctx context.Context) error { return body(ctx, i) })
	}
}

// piccoloInsert inserts the i-th row through p's engine: piccoloInsertQ or
// piccoloInsertE.
type piccoloInsert = func(ctx context.Context, p *peers, i int) error

// txBodies is a transaction workload: what its i-th operation does inside
// each library's transaction.
type txBodies struct {
	pgx     func(ctx context.Context, tx pgx.Tx, i int) error
	sql     func(ctx context.Context, tx *sql.Tx, i int) error
	gorm    func(ctx context.Context, tx *gorm.DB, i int) error
	bun     func(ctx context.Context, tx bun.Tx, i int) error
	piccolo func(ctx context.Context, insert piccoloInsert, i int) error
}

// txCases returns the cases of a transaction workload, one a library.
func txCases(p *peers, b txBodies) caseList {
	piccoloTx := func(insert piccoloInsert) op {
		return inPiccoloTx(p, func(ctx context.Context, i int) error { return b.piccolo(ctx, insert, i) })
	}
	return caseList{
		{peer: peerPgxConn, op: inPgxTx(p.conn, b.pgx)},
		{peer: peerPgxPool, baseline: true, op: inPgxTx(p.pool, b.pgx)},
		{peer: peerSQL, op: inSQLTx(p.sqlDB, b.sql)},
		{peer: peerSqlx, op: inSQLTx(p.sqlxDB.DB, b.sql)},
		{peer: peerGorm, op: inGormTx(p.gorm, b.gorm)},
		{peer: peerGormP, op: inGormTx(p.gormP, b.gorm)},
		{peer: peerBun, op: inBunTx(p.bun, b.bun)},
		{peer: peerPiccoloQ, op: piccoloTx(piccoloInsertQ)},
		{peer: peerPiccoloE, op: piccoloTx(piccoloInsertE)},
	}
}

func tx10(p *peers) []benchCase {
	return txCases(p, txBodies{
		pgx: func(ctx context.Context, tx pgx.Tx, i int) error {
			return repeat(10, func(j int) error { return pgxInsertRow(ctx, tx, i*10+j) })
		},
		sql: func(ctx context.Context, tx *sql.Tx, i int) error {
			return repeat(10, func(j int) error { return sqlInsertRow(ctx, tx, i*10+j) })
		},
		gorm: func(_ context.Context, tx *gorm.DB, i int) error {
			return repeat(10, func(j int) error { return gormInsertRow(tx, i*10+j) })
		},
		bun: func(ctx context.Context, tx bun.Tx, i int) error {
			return repeat(10, func(j int) error { return bunInsertRow(ctx, tx, i*10+j) })
		},
		piccolo: func(ctx context.Context, insert piccoloInsert, i int) error {
			return repeat(10, func(j int) error { return insert(ctx, p, i*10+j) })
		},
	}).withWorkload(wlTx10).inserting(10)
}

// txSavepoint: insert, a nested block that inserts and rolls back to its
// savepoint, insert, commit. Two rows stay. Each library's nested block is
// written out: a shared generic one would add closures, and allocations,
// that the libraries do not.
func txSavepoint(p *peers) []benchCase {
	return txCases(p, txBodies{
		pgx: func(ctx context.Context, tx pgx.Tx, i int) error {
			if err := pgxInsertRow(ctx, tx, i); err != nil {
				return err
			}
			err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error { // a savepoint
				if err := pgxInsertRow(ctx, sp, i); err != nil {
					return err
				}
				return errRollback
			})
			if !errors.Is(err, errRollback) {
				return fmt.Errorf("nested block: %w", err)
			}
			return pgxInsertRow(ctx, tx, i)
		},
		sql: func(ctx context.Context, tx *sql.Tx, i int) error {
			steps := []func() error{
				func() error { return sqlInsertRow(ctx, tx, i) },
				func() error { _, err := tx.ExecContext(ctx, "SAVEPOINT sp"); return err },
				func() error { return sqlInsertRow(ctx, tx, i) },
				func() error { _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT sp"); return err },
				func() error { return sqlInsertRow(ctx, tx, i) },
			}
			for _, step := range steps {
				if err := step(); err != nil {
					return err
				}
			}
			return nil
		},
		gorm: func(_ context.Context, tx *gorm.DB, i int) error {
			if err := gormInsertRow(tx, i); err != nil {
				return err
			}
			err := tx.Transaction(func(sp *gorm.DB) error { // a savepoint
				if err := gormInsertRow(sp, i); err != nil {
					return err
				}
				return errRollback
			})
			if !errors.Is(err, errRollback) {
				return fmt.Errorf("nested block: %w", err)
			}
			return gormInsertRow(tx, i)
		},
		bun: func(ctx context.Context, tx bun.Tx, i int) error {
			if err := bunInsertRow(ctx, tx, i); err != nil {
				return err
			}
			err := tx.RunInTx(ctx, nil, func(ctx context.Context, sp bun.Tx) error { // a savepoint
				if err := bunInsertRow(ctx, sp, i); err != nil {
					return err
				}
				return errRollback
			})
			if !errors.Is(err, errRollback) {
				return fmt.Errorf("nested block: %w", err)
			}
			return bunInsertRow(ctx, tx, i)
		},
		piccolo: func(ctx context.Context, insert piccoloInsert, i int) error {
			if err := insert(ctx, p, i); err != nil {
				return err
			}
			err := p.engine.Transaction(ctx, func(ctx context.Context) error {
				if err := insert(ctx, p, i); err != nil {
					return err
				}
				return errRollback
			}, piccolo.Nesting(piccolo.NestSavepoint))
			if !errors.Is(err, errRollback) {
				return fmt.Errorf("nested block: %w", err)
			}
			return insert(ctx, p, i)
		},
	}).withWorkload(wlTxSP).inserting(2)
}
