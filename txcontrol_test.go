package piccolo_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/piccolo-go/piccolo"
)

// Inside a transaction of the engine, SQL that would begin or end a
// transaction is refused before any I/O, wherever it stands in a script:
// `COMMIT; INSERT ...` would otherwise commit the work so far and run the
// INSERT in autocommit before the engine could notice. The transaction is
// left as it was; Commit, Rollback and Savepoint are the way.
func TestTransactionRefusesTransactionControlSQL(t *testing.T) {
	t.Parallel()
	for _, script := range []string{
		"COMMIT; INSERT INTO %[1]s (name) VALUES ('autocommitted')",
		"INSERT INTO %[1]s (name) VALUES ('x'); ROLLBACK; INSERT INTO %[1]s (name) VALUES ('autocommitted')",
		"COMMIT AND CHAIN",
		"commit",
		"END",
		"ABORT",
		"BEGIN",
		"START TRANSACTION READ ONLY",
		"PREPARE TRANSACTION 'piccolo_tx'",
	} {
		t.Run(script, func(t *testing.T) {
			t.Parallel()
			e, logs := loggedEngine(t)
			table := newTable(t, e)
			sql := strings.ReplaceAll(script, "%[1]s", table)
			var scriptErr, afterErr error
			err := e.Transaction(context.Background(), func(ctx context.Context) error {
				mustInsert(t, ctx, e, table, "before")
				scriptErr = e.RunDDL(ctx, sql)
				afterErr = insert(ctx, e, table, "after")
				return errBoom
			})
			if !errors.Is(err, errBoom) {
				t.Fatalf("Transaction: %v", err)
			}
			if got := names(t, e, table); len(got) != 0 {
				t.Errorf("a rolled-back transaction committed %v", got)
			}
			if afterErr != nil {
				t.Errorf("the transaction did not go on after the refused script: %v", afterErr)
			}
			if !errors.Is(scriptErr, piccolo.ErrTransactionControl) {
				t.Fatalf("RunDDL(%q) in a transaction: %v, want ErrTransactionControl", sql, scriptErr)
			}
			if strings.Contains(logs.String(), "autocommitted") || strings.Contains(logs.String(), "piccolo_tx") {
				t.Fatalf("the script was sent:\n%s", logs)
			}
		})
	}
}

// Savepoints sent as SQL stay allowed inside a transaction (the shell's
// users type them), and outside a transaction a script may hold its own
// BEGIN and COMMIT.
func TestTransactionControlSQLAllowedWhereItCannotHide(t *testing.T) {
	t.Parallel()
	e, table := pooledTable(t)
	ctx := context.Background()
	err := e.Transaction(ctx, func(ctx context.Context) error {
		return e.RunDDL(ctx, "SAVEPOINT s; INSERT INTO "+table+" (name) VALUES ('undone'); ROLLBACK TO SAVEPOINT s; RELEASE s; INSERT INTO "+table+" (name) VALUES ('kept')")
	})
	if err != nil {
		t.Fatalf("SQL savepoints in a transaction: %v", err)
	}
	if err := e.RunDDL(ctx, "BEGIN; INSERT INTO "+table+" (name) VALUES ('script'); COMMIT"); err != nil {
		t.Fatalf("a script with its own transaction, outside one: %v", err)
	}
	assertRows(t, e, table, "kept", "script")
}
