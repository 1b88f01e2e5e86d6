package piccolo

import (
	"fmt"

	"github.com/piccolo-go/piccolo/internal/sqltext"
)

// refuseTxControl returns an error wrapping ErrTransactionControl when a
// statement of script controls the transaction as one of kinds; why says
// who owns the transaction and what to do instead. Nothing is sent.
func refuseTxControl(script, why string, kinds ...sqltext.TxControl) error {
	i, stmt, c := sqltext.FirstControl(script, kinds...)
	if i < 0 {
		return nil
	}
	where := ""
	if i > 0 {
		where = fmt.Sprintf(" (statement %d of the script)", i+1)
	}
	return fmt.Errorf("%w: %.60q%s %s, but %s", ErrTransactionControl, stmt, where, c, why)
}

// refuseInTransaction refuses a script run inside a transaction of the
// engine that would begin or end that transaction. SAVEPOINT, RELEASE and
// ROLLBACK TO stay allowed: they cannot commit anything.
func refuseInTransaction(script string) error {
	return refuseTxControl(script,
		"the engine manages this transaction: the statement was not sent; use the transaction's Commit or Rollback, or run the script outside a transaction",
		sqltext.TxStart, sqltext.TxEnd)
}

// refuseInAtomic refuses a queued script that controls the transaction in
// any way.
func refuseInAtomic(script string) error {
	return refuseTxControl(script,
		"Atomic owns the transaction: nothing was sent; drop the statement, or run the script with RunDDL outside a transaction",
		sqltext.TxStart, sqltext.TxEnd, sqltext.TxSavepoint)
}
