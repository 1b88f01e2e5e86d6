package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
)

// errNoTransaction is returned by the commands that need a transaction.
var errNoTransaction = errors.New(`no transaction in progress: BEGIN; or \begin starts one`)

// txStatement runs transaction control typed as SQL through the engine's
// transactions: BEGIN with its options, COMMIT and ROLLBACK (AND CHAIN
// too), savepoints. What the shell cannot follow is refused, never sent
// on its own: a BEGIN sent as SQL would leave every later statement to
// autocommit.
func (s *session) txStatement(ctx context.Context, sql string) error {
	cmd, err := parseTx(sql)
	if err != nil {
		return err
	}
	switch cmd.action {
	case txBegin:
		if s.tx != nil {
			s.warn("there is already a transaction in progress")
			return nil
		}
		return s.begin(ctx, cmd.mode, cmd.tag)
	case txCommit, txRollback:
		if s.tx == nil {
			s.warn("there is no transaction in progress")
			fmt.Fprintln(s.out, cmd.tag)
			return nil
		}
		end := s.commit
		if cmd.action == txRollback {
			end = s.rollback
		}
		err := end()
		if cmd.chain && (err == nil || errors.Is(err, piccolo.ErrCommitRolledBack)) {
			return errors.Join(err, s.begin(ctx, s.mode, "BEGIN"))
		}
		return err
	case txSavepoint:
		return s.savepoint(cmd.name)
	case txRelease:
		return s.release(cmd.name)
	case txRollbackTo:
		return s.rollbackTo(cmd.name)
	}
	// COMMIT PREPARED or ROLLBACK PREPARED: they run outside a transaction,
	// which the engine enforces.
	return s.run(ctx, sql)
}

// warn prints a warning, as the server's are printed.
func (s *session) warn(msg string) {
	fmt.Fprintln(s.errOut, "WARNING: "+msg)
}

// begin starts a transaction in mode and keeps the context that carries it.
func (s *session) begin(ctx context.Context, mode txMode, tag string) error {
	if s.tx != nil {
		return errors.New(`a transaction is already in progress: COMMIT or ROLLBACK it first`)
	}
	txCtx, tx, err := s.engine.Begin(ctx, mode.options()...)
	if err != nil {
		return err
	}
	s.txCtx, s.tx, s.mode, s.aborted = txCtx, tx, mode, false
	fmt.Fprintln(s.out, tag)
	return nil
}

// commit ends the transaction with Commit; a transaction that failed
// inside is rolled back, and Commit says so.
func (s *session) commit() error {
	if s.tx == nil {
		return errNoTransaction
	}
	err := s.tx.Commit(s.txCtx)
	s.forgetTransaction() // committed or not, it is over
	if errors.Is(err, piccolo.ErrCommitRolledBack) {
		fmt.Fprintln(s.out, "ROLLBACK")
	} else if err == nil {
		fmt.Fprintln(s.out, "COMMIT")
	}
	return err
}

// rollback ends the transaction with Rollback.
func (s *session) rollback() error {
	if s.tx == nil {
		return errNoTransaction
	}
	err := s.tx.Rollback(s.txCtx)
	s.forgetTransaction()
	if err == nil {
		fmt.Fprintln(s.out, "ROLLBACK")
	}
	return err
}

func (s *session) forgetTransaction() {
	s.txCtx, s.tx, s.aborted = nil, nil, false
}

// endTransaction rolls back a transaction still open when the session
// ends, Ctrl-C and SIGTERM included. A connection already closed took the
// transaction with it: the server rolled it back.
func (s *session) endTransaction(ctx context.Context) {
	if s.tx == nil {
		return
	}
	err := s.tx.Rollback(context.WithoutCancel(s.txCtx))
	s.forgetTransaction()
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(s.errOut, "interrupted inside a transaction: it was rolled back")
	case err != nil:
		s.fail(fmt.Errorf("the session ended inside a transaction; rolling it back failed: %w", err))
	default:
		fmt.Fprintln(s.errOut, "the session ended inside a transaction: it was rolled back")
	}
}

// noteOutcome tracks whether the transaction failed: a server error inside
// it (a cancelled statement's included) aborts it, and only ROLLBACK TO
// SAVEPOINT succeeds in a failed one.
func (s *session) noteOutcome(err error) {
	if s.tx == nil {
		return
	}
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		s.aborted = false
	case errors.As(err, &pgErr):
		s.aborted = true
	}
}

// savepoint creates a savepoint through the engine's handle; "" generates
// a name.
func (s *session) savepoint(name string) error {
	if s.tx == nil {
		return errNoTransaction
	}
	sp, err := s.tx.Savepoint(s.txCtx, name)
	if err != nil {
		return err
	}
	fmt.Fprintln(s.out, "SAVEPOINT "+sp.Name())
	return nil
}

// rollbackTo rolls back to savepoint name; success un-fails the transaction.
func (s *session) rollbackTo(name string) error {
	if err := s.needSavepoint(`\rollback_to`, name); err != nil {
		return err
	}
	err := s.tx.RollbackTo(s.txCtx, name)
	s.noteOutcome(err)
	if err == nil {
		fmt.Fprintln(s.out, "ROLLBACK")
	}
	return err
}

// release releases savepoint name.
func (s *session) release(name string) error {
	if err := s.needSavepoint(`\release`, name); err != nil {
		return err
	}
	quoted, err := piccolo.QuoteIdentifier(name)
	if err != nil {
		return err
	}
	_, err = s.engine.Exec(s.txCtx, piccolo.Querystring{SQL: "RELEASE SAVEPOINT " + quoted})
	s.noteOutcome(err)
	if err == nil {
		fmt.Fprintln(s.out, "RELEASE")
	}
	return err
}

// needSavepoint refuses the meta-command cmd, which acts on the savepoint
// name of the open transaction, when there is no transaction or no name.
func (s *session) needSavepoint(cmd, name string) error {
	if s.tx == nil {
		return errNoTransaction
	}
	if name == "" {
		return errors.New(cmd + " needs a savepoint name")
	}
	return nil
}
