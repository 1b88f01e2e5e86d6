// Package piccolo is the PostgreSQL engine of the Piccolo ORM, for Go, on
// pgx.
//
// A PostgresEngine is configured from a DSN or the standard PG* variables
// and does no I/O until first used. Every query is routed by its
// context.Context: it runs on the context's transaction if there is one,
// else on the engine's connection pool if started, else on a one-shot
// connection that is always closed afterwards.
//
//	engine, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{DSN: dsn})
//	if err != nil { ... }
//	if err := engine.StartConnectionPool(ctx); err != nil { ... }
//	defer engine.Close()
//
// # Transactions
//
// Transaction runs a closure in a transaction carried by the context it
// receives: nil commits, an error rolls back and is returned, a panic rolls
// back and is re-raised. Begin is the manual form. A finished transaction
// refuses every later statement with ErrTransactionDone instead of running
// it in autocommit, and a COMMIT that PostgreSQL turned into a rollback
// returns ErrCommitRolledBack instead of losing the work silently. SQL that
// would begin or end a transaction the engine manages (a script's own
// COMMIT) is refused with ErrTransactionControl before it is sent.
//
// A transaction started inside another one joins it by default (NestJoin):
// a failure of the inner block makes the whole transaction rollback-only.
// NestRefuse returns ErrNestedTransaction; NestSavepoint makes the inner
// block a savepoint, so that its failure undoes only its own work (savepoint
// blocks form a stack: a sibling of an open one is refused). Retry
// re-runs the closure from BEGIN after a serialization failure or deadlock.
//
// BEGIN and SAVEPOINT are sent only when the first statement needs them,
// so a transaction that runs nothing costs no round trip; they ride in
// one pipeline with that statement when it is a data statement the engine
// has described before and whose arguments encode.
//
// # Streaming and atomic runs
//
// Batch streams a query's rows through a server-side cursor, BatchSize rows
// at a time, in constant memory; its All method is an iterator. Atomic
// queues queries and runs them in one transaction, sending consecutive
// data statements in one pipelined round trip.
//
// # Errors
//
// Server errors keep their *pgconn.PgError reachable through errors.As; the
// engine's own conditions are sentinels for errors.Is (ErrNestedTransaction,
// ErrTransactionDone, ErrCommitRolledBack, ErrAmbiguousCommit,
// ErrInvalidSavepointName, ErrUnknownNode, ErrNoPool, ErrBatchClosed,
// ErrConnBusy, ErrTransactionControl) and *AtomicError names the queued
// query that failed.
package piccolo
