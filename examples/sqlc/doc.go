// Package sqlcexample shows sqlc's generated code (package db, from
// schema.sql and query.sql, sql_package pgx/v5) running on a piccolo
// engine's Querier: the generated queries join the context's transaction,
// its nesting and Retry without a Tx being passed around. Regenerate db
// with
//
//	go run github.com/sqlc-dev/sqlc/cmd/sqlc@v1.31.1 generate
package sqlcexample
