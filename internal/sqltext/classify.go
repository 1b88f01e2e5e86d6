package sqltext

import "strings"

// TxControl says how a statement controls the transaction it runs in.
type TxControl uint8

const (
	// NoTxControl: the statement leaves the transaction alone.
	NoTxControl TxControl = iota
	// TxStart: BEGIN or START TRANSACTION.
	TxStart
	// TxEnd: COMMIT, END, ROLLBACK, ABORT (AND CHAIN or not), PREPARE
	// TRANSACTION, COMMIT PREPARED, ROLLBACK PREPARED.
	TxEnd
	// TxSavepoint: SAVEPOINT, RELEASE [SAVEPOINT], ROLLBACK [WORK |
	// TRANSACTION] TO [SAVEPOINT].
	TxSavepoint
)

// String names the kind of control, for error messages.
func (c TxControl) String() string {
	switch c {
	case TxStart:
		return "begins a transaction"
	case TxEnd:
		return "ends the transaction"
	case TxSavepoint:
		return "manages a savepoint"
	}
	return "does not control the transaction"
}

// Control says how stmt, one statement, controls the transaction.
func Control(stmt string) TxControl {
	w := words(stmt, 4)
	if len(w) == 0 {
		return NoTxControl
	}
	next := func(i int) string {
		if i < len(w) {
			return w[i]
		}
		return ""
	}
	switch w[0] {
	case "BEGIN":
		return TxStart
	case "START":
		if next(1) == "TRANSACTION" {
			return TxStart
		}
	case "COMMIT", "END", "ABORT":
		return TxEnd
	case "PREPARE":
		if next(1) == "TRANSACTION" {
			return TxEnd
		}
	case "SAVEPOINT", "RELEASE":
		return TxSavepoint
	case "ROLLBACK":
		i := 1
		if n := next(1); n == "WORK" || n == "TRANSACTION" {
			i = 2
		}
		if next(i) == "TO" {
			return TxSavepoint
		}
		return TxEnd
	}
	return NoTxControl
}

// FirstControl returns the index and kind of the first statement of script
// that controls the transaction as one of kinds, or -1.
func FirstControl(script string, kinds ...TxControl) (int, string, TxControl) {
	stmts := []string{script}
	if strings.IndexByte(script, ';') >= 0 { // else one statement: no need to split
		stmts = Statements(script)
	}
	for i, stmt := range stmts {
		c := Control(stmt)
		for _, k := range kinds {
			if c == k {
				return i, stmt, c
			}
		}
	}
	return -1, "", NoTxControl
}

// IsData reports whether script is a single statement that reads or
// writes rows but cannot change the schema a later statement is described
// against: SELECT, INSERT, UPDATE, DELETE, MERGE, VALUES, TABLE or WITH,
// with no INTO but that of INSERT INTO or MERGE INTO (SELECT ... INTO
// creates a table). It errs towards false: a statement it does not
// recognise may change the schema. (A data statement may still call a
// function that does; the engine copes with that when it describes.)
func IsData(script string) bool {
	stmts := Statements(script)
	if len(stmts) != 1 {
		return false
	}
	// The statement's tokens: words upper-cased, any other token as "".
	var w []string
	sc := scanner{text: stmts[0]}
	for tok, ok := sc.next(); ok; tok, ok = sc.next() {
		switch {
		case tok.kind == tokWord:
			w = append(w, strings.ToUpper(stmts[0][tok.start:tok.end]))
		case tok.kind != tokOpen || len(w) > 0: // leading parentheses: (SELECT ...) UNION ...
			w = append(w, "")
		}
	}
	if len(w) == 0 {
		return false
	}
	switch w[0] {
	case "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "TABLE", "WITH":
	default:
		return false
	}
	for i, word := range w {
		if word != "INTO" {
			continue
		}
		// INSERT INTO and MERGE INTO, unless INSERT is a column alias (AS insert INTO t).
		if i == 0 || w[i-1] != "INSERT" && w[i-1] != "MERGE" || i >= 2 && w[i-2] == "AS" {
			return false
		}
	}
	return true
}
