package sqltext

import (
	"slices"
	"strings"
)

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
	var w [4]string // the first words, as written
	sc := scanner{text: stmt}
	for n := 0; n < len(w); {
		tok, ok := sc.next()
		if !ok {
			break
		}
		if tok.kind == tokWord {
			w[n] = stmt[tok.start:tok.end]
			n++
		}
	}
	is := strings.EqualFold
	switch {
	case is(w[0], "BEGIN"):
		return TxStart
	case is(w[0], "START") && is(w[1], "TRANSACTION"):
		return TxStart
	case is(w[0], "COMMIT"), is(w[0], "END"), is(w[0], "ABORT"):
		return TxEnd
	case is(w[0], "PREPARE") && is(w[1], "TRANSACTION"):
		return TxEnd
	case is(w[0], "SAVEPOINT"), is(w[0], "RELEASE"):
		return TxSavepoint
	case is(w[0], "ROLLBACK"):
		to := w[1]
		if is(to, "WORK") || is(to, "TRANSACTION") {
			to = w[2]
		}
		if is(to, "TO") {
			return TxSavepoint
		}
		return TxEnd
	}
	return NoTxControl
}

// FirstControl returns the index and kind of the first statement of script
// that controls the transaction as one of kinds, or -1.
func FirstControl(script string, kinds ...TxControl) (int, string, TxControl) {
	if strings.IndexByte(script, ';') < 0 { // one statement: no need to split
		if c := Control(script); slices.Contains(kinds, c) {
			return 0, script, c
		}
		return -1, "", NoTxControl
	}
	for i, stmt := range Statements(script) {
		if c := Control(stmt); slices.Contains(kinds, c) {
			return i, stmt, c
		}
	}
	return -1, "", NoTxControl
}

// IsData reports whether script is a single statement that reads or
// writes rows but cannot change the schema a later statement is described
// against: SELECT, INSERT, UPDATE, DELETE, MERGE, VALUES, TABLE or WITH,
// with no INTO but that of INSERT INTO or MERGE INTO (SELECT ... INTO
// creates a table), and no semicolon but a last one. It errs towards
// false: a statement it does not recognise may change the schema. (A data
// statement may still call a function that does; the engine copes with
// that when it describes.)
func IsData(script string) bool {
	is := strings.EqualFold
	var first, prev, prev2 string // words, as written
	ended := false                // a semicolon came
	sc := scanner{text: script}
	for tok, ok := sc.next(); ok; tok, ok = sc.next() {
		if ended {
			return false // a second statement
		}
		switch tok.kind {
		case tokSemicolon:
			ended = true
			continue
		case tokOpen:
			if first == "" {
				continue // (SELECT ...) UNION ...
			}
		case tokWord:
			word := script[tok.start:tok.end]
			if first == "" {
				first = word
				switch {
				case is(word, "SELECT"), is(word, "INSERT"), is(word, "UPDATE"), is(word, "DELETE"),
					is(word, "MERGE"), is(word, "VALUES"), is(word, "TABLE"), is(word, "WITH"):
				default:
					return false
				}
			}
			// INSERT INTO and MERGE INTO, unless INSERT is a column alias (AS insert INTO t).
			if is(word, "INTO") && (!is(prev, "INSERT") && !is(prev, "MERGE") || is(prev2, "AS")) {
				return false
			}
			prev2, prev = prev, word
			continue
		}
		if first == "" {
			return false
		}
		prev2, prev = prev, "" // punctuation separates words
	}
	return first != "" && !sc.open
}
