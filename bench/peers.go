package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/query"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Item is the row every workload reads and writes, tagged for each library
// that maps structs: piccolo-go's query layer, sqlx and GORM.
type Item struct {
	ID        int64     `piccolo:"id,pk" db:"id" gorm:"column:id;primaryKey"`
	Name      string    `piccolo:"name" db:"name" gorm:"column:name"`
	Qty       int32     `piccolo:"qty" db:"qty" gorm:"column:qty"`
	Price     float64   `piccolo:"price" db:"price" gorm:"column:price"`
	CreatedAt time.Time `piccolo:"created_at" db:"created_at" gorm:"column:created_at"`
}

// TableName names GORM's table.
func (Item) TableName() string { return "items" }

// bunItem is Item as Bun wants it: the table named by an embedded
// bun.BaseModel, which would be a column to the other libraries.
type bunItem struct {
	bun.BaseModel `bun:"table:items"`

	ID        int64     `bun:"id,pk,autoincrement"`
	Name      string    `bun:"name,notnull"`
	Qty       int32     `bun:"qty,notnull"`
	Price     float64   `bun:"price,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

// The query layer's declaration of the items table.
var (
	items   = query.MustTable[Item]("items")
	itemID  = query.C(items, func(i *Item) *int64 { return &i.ID })
	itemQty = query.C(items, func(i *Item) *int32 { return &i.Qty })
)

// The statements of the libraries that take SQL.
const (
	itemColumns = "id, name, qty, price, created_at"
	selectByID  = "SELECT " + itemColumns + " FROM items WHERE id = $1"
	select100   = "SELECT " + itemColumns + " FROM items ORDER BY id LIMIT 100"
	insertItem  = "INSERT INTO items (name, qty, price, created_at) VALUES ($1, $2, $3, $4) RETURNING id"
	insertPlain = "INSERT INTO items (name, qty, price, created_at) VALUES ($1, $2, $3, $4)"
	updateQty   = "UPDATE items SET qty = $1 WHERE id = $2"
)

// peers holds one connection (or pool) per library, all on the same
// database, each pool as large as the others.
type peers struct {
	conn    *pgx.Conn
	pool    *pgxpool.Pool
	sqlDB   *sql.DB
	sqlxDB  *sqlx.DB
	gorm    *gorm.DB // PrepareStmt off
	gormP   *gorm.DB // PrepareStmt on
	bun     *bun.DB
	engine  *piccolo.PostgresEngine
	closers []func() error
}

// openPeers connects every library to dsn with pools of poolSize
// connections.
func openPeers(ctx context.Context, dsn string, poolSize int32) (_ *peers, err error) {
	p := &peers{}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.close(ctx))
		}
	}()
	if p.conn, err = pgx.Connect(ctx, dsn); err != nil {
		return nil, fmt.Errorf("pgx connect: %w", err)
	}
	p.closers = append(p.closers, func() error { return p.conn.Close(context.WithoutCancel(ctx)) })

	poolCfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgxpool: parse DSN: %w", err)
	}
	poolCfg.MaxConns = poolSize
	if p.pool, err = pgxpool.NewWithConfig(ctx, poolCfg); err != nil {
		return nil, fmt.Errorf("pgxpool: %w", err)
	}
	p.closers = append(p.closers, func() error { p.pool.Close(); return nil })

	openSQL := func() (*sql.DB, error) {
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			return nil, fmt.Errorf("database/sql: parse DSN: %w", err)
		}
		db := stdlib.OpenDB(*cfg)
		db.SetMaxOpenConns(int(poolSize))
		db.SetMaxIdleConns(int(poolSize))
		p.closers = append(p.closers, db.Close)
		return db, nil
	}
	if p.sqlDB, err = openSQL(); err != nil {
		return nil, err
	}
	sqlxBase, err := openSQL()
	if err != nil {
		return nil, err
	}
	p.sqlxDB = sqlx.NewDb(sqlxBase, "pgx")
	for _, prepare := range []bool{false, true} {
		db, err := openSQL()
		if err != nil {
			return nil, err
		}
		g, err := gorm.Open(postgres.New(postgres.Config{Conn: db}), &gorm.Config{
			PrepareStmt: prepare,
			// GORM's performance guide: no implicit transaction per write.
			SkipDefaultTransaction: true,
			Logger:                 logger.Discard,
		})
		if err != nil {
			return nil, fmt.Errorf("gorm open: %w", err)
		}
		if prepare {
			p.gormP = g
		} else {
			p.gorm = g
		}
	}
	bunBase, err := openSQL()
	if err != nil {
		return nil, err
	}
	p.bun = bun.NewDB(bunBase, pgdialect.New())

	if p.engine, err = piccolo.NewPostgresEngine(piccolo.PostgresConfig{DSN: dsn, MaxConns: poolSize}); err != nil {
		return nil, fmt.Errorf("piccolo: %w", err)
	}
	if err = p.engine.StartConnectionPool(ctx); err != nil {
		return nil, fmt.Errorf("piccolo: %w", err)
	}
	p.closers = append(p.closers, func() error { p.engine.Close(); return nil })
	return p, p.warm(ctx)
}

// warm opens every pool's connections, so that no benchmark pays for
// connecting.
func (p *peers) warm(ctx context.Context) error {
	for _, db := range []*sql.DB{p.sqlDB, p.sqlxDB.DB, p.bun.DB} {
		if err := db.PingContext(ctx); err != nil {
			return fmt.Errorf("ping: %w", err)
		}
	}
	for _, g := range []*gorm.DB{p.gorm, p.gormP} {
		db, err := g.DB()
		if err != nil {
			return fmt.Errorf("gorm: %w", err)
		}
		if err := db.PingContext(ctx); err != nil {
			return fmt.Errorf("gorm ping: %w", err)
		}
	}
	return nil
}

// close closes every connection that was opened, in reverse order.
func (p *peers) close(context.Context) error {
	var errs []error
	for i := len(p.closers) - 1; i >= 0; i-- {
		errs = append(errs, p.closers[i]())
	}
	p.closers = nil
	return errors.Join(errs...)
}
