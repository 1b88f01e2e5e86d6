package main

import (
	"context"
	"errors"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	"github.com/piccolo-go/piccolo"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// The streaming cases. Each connects on its own, records its RSS once
// connected, reads every row into an Item (or a map) and returns the count.

// streamFunc reads the whole streaming table from dsn, batch rows a round
// trip (0: one plain query), and returns the number of rows read.
type streamFunc = func(ctx context.Context, dsn string, batch int) (rows int64, err error)

// opened returns the streaming case that opens its library on dsn with
// open, reads with read and closes what open opened. open records the RSS
// once connected, and returns how to close what it opened (nil: nothing)
// with its error too.
func opened[H any](open func(ctx context.Context, dsn string) (H, func(), error),
	read func(ctx context.Context, h H, batch int) (int64, error)) streamFunc {
	return func(ctx context.Context, dsn string, batch int) (int64, error) {
		h, closeH, err := open(ctx, dsn)
		if closeH != nil {
			defer closeH()
		}
		if err != nil {
			return 0, err
		}
		return read(ctx, h, batch)
	}
}

// openConn connects pgx for a streaming case.
func openConn(ctx context.Context, dsn string) (*pgx.Conn, func(), error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, nil, err
	}
	return conn, func() { conn.Close(context.WithoutCancel(ctx)) }, connected()
}

// openEngine starts a piccolo-go engine with its pool for a streaming case.
func openEngine(ctx context.Context, dsn string) (*piccolo.PostgresEngine, func(), error) {
	e, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{DSN: dsn})
	if err != nil {
		return nil, nil, err
	}
	if err := e.StartConnectionPool(ctx); err != nil {
		return nil, e.Close, err
	}
	return e, e.Close, connected()
}

// openStdlib opens database/sql on pgx for a streaming case.
func openStdlib(ctx context.Context, dsn string) (*sqlx.DB, func(), error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, nil, err
	}
	db := sqlx.NewDb(stdlib.OpenDB(*cfg), "pgx")
	if err := db.PingContext(ctx); err != nil {
		return nil, nil, errors.Join(err, db.Close())
	}
	return db, func() { db.Close() }, connected()
}

// openGorm opens GORM (prepared statements off) for a streaming case.
func openGorm(ctx context.Context, dsn string) (*gorm.DB, func(), error) {
	db, closeDB, err := openStdlib(ctx, dsn)
	if err != nil {
		return nil, closeDB, err
	}
	g, err := gorm.Open(postgres.New(postgres.Config{Conn: db.DB}), &gorm.Config{
		SkipDefaultTransaction: true, Logger: logger.Discard,
	})
	if err != nil {
		return nil, closeDB, err
	}
	return g.WithContext(ctx), closeDB, nil
}

func streamPgx(ctx context.Context, conn *pgx.Conn, _ int) (int64, error) {
	rows, err := conn.Query(ctx, streamSelect)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var it Item
	return countRows(rows, func() error { return scanItem(rows, &it) })
}

// scanTyped reads a row into an Item; scanMap into a map, as Batch.Next
// does.
func scanTyped(rows pgx.Rows) error {
	var it Item
	return scanItem(rows, &it)
}

func scanMap(rows pgx.Rows) error {
	_, err := pgx.RowToMap(rows)
	return err
}

// streamPgxCursorLoop returns the hand-written peer of piccolo-go's Batch: a
// transaction, a cursor, FETCH until a short batch, each row read by scan.
func streamPgxCursorLoop(scan func(pgx.Rows) error) streamFunc {
	return opened(openConn, func(ctx context.Context, conn *pgx.Conn, batch int) (int64, error) {
		var n int64
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "DECLARE c NO SCROLL CURSOR FOR "+streamSelect); err != nil {
				return err
			}
			fetch := "FETCH FORWARD " + strconv.Itoa(batch) + " FROM c"
			for {
				rows, err := tx.Query(ctx, fetch)
				if err != nil {
					return err
				}
				got := 0
				for rows.Next() {
					if err := scan(rows); err != nil {
						rows.Close()
						return err
					}
					got++
				}
				if err := rows.Err(); err != nil {
					return err
				}
				n += int64(got)
				if got < batch {
					return nil
				}
			}
		})
		return n, err
	})
}

func streamPiccoloQueryFunc(ctx context.Context, e *piccolo.PostgresEngine, _ int) (int64, error) {
	var n int64
	var it Item
	err := e.QueryFunc(ctx, piccolo.Querystring{SQL: streamSelect}, func(r pgx.Rows) error {
		n++
		return scanItem(r, &it)
	})
	return n, err
}

func streamPiccoloBatchTyped(ctx context.Context, e *piccolo.PostgresEngine, batch int) (int64, error) {
	b, err := e.Batch(ctx, piccolo.Raw(streamSelect), piccolo.BatchSize(batch))
	if err != nil {
		return 0, err
	}
	defer b.Close(ctx) //nolint:errcheck // closed by the last NextFunc; this covers errors
	var n int64
	var it Item
	for {
		got, err := b.NextFunc(ctx, func(r pgx.Rows) error { return scanItem(r, &it) })
		if err != nil {
			return n, err
		}
		if got == 0 {
			return n, nil
		}
		n += int64(got)
	}
}

func streamPiccoloBatchMaps(ctx context.Context, e *piccolo.PostgresEngine, batch int) (int64, error) {
	b, err := e.Batch(ctx, piccolo.Raw(streamSelect), piccolo.BatchSize(batch))
	if err != nil {
		return 0, err
	}
	var n int64
	for rows, err := range b.All(ctx) {
		if err != nil {
			return n, err
		}
		n += int64(len(rows))
	}
	return n, nil
}

func streamSQL(ctx context.Context, db *sqlx.DB, _ int) (int64, error) {
	rows, err := db.DB.QueryContext(ctx, streamSelect)
	var it Item
	return countQuery(rows, err, func() error { return scanItem(rows, &it) })
}

func streamSqlx(ctx context.Context, db *sqlx.DB, _ int) (int64, error) {
	rows, err := db.QueryxContext(ctx, streamSelect)
	var it Item
	return countQuery(rows, err, func() error { return rows.StructScan(&it) })
}

func streamGormRows(_ context.Context, g *gorm.DB, _ int) (int64, error) {
	rows, err := g.Table("stream_items").Rows()
	var it Item
	return countQuery(rows, err, func() error { return g.ScanRows(rows, &it) })
}

func streamGormBatches(_ context.Context, g *gorm.DB, batch int) (int64, error) {
	var n int64
	var page []Item
	err := g.Table("stream_items").FindInBatches(&page, batch, func(*gorm.DB, int) error {
		n += int64(len(page))
		return nil
	}).Error
	return n, err
}

// streamBun reads through Bun on the database/sql DB that openStdlib opened.
func streamBun(ctx context.Context, db *sqlx.DB, _ int) (int64, error) {
	b := bun.NewDB(db.DB, pgdialect.New())
	rows, err := b.QueryContext(ctx, streamSelect)
	var it bunItem
	return countQuery(rows, err, func() error { return b.ScanRow(ctx, rows, &it) })
}

// countQuery counts the rows of a database/sql query that returned rows
// and err, with countRows, and closes them.
func countQuery(rows interface {
	Next() bool
	Err() error
	Close() error
}, err error, scan func() error) (int64, error) {
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	return countRows(rows, scan)
}

// countRows reads every row with scan, which scans the current row, and
// counts them: the loop each streaming peer runs over its own rows type.
func countRows(rows interface {
	Next() bool
	Err() error
}, scan func() error) (int64, error) {
	var n int64
	for rows.Next() {
		if err := scan(); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}
