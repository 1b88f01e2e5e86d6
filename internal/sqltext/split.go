// Package sqltext reads SQL text the way PostgreSQL's lexer does, without
// parsing it: it cuts scripts into statements and tells what kind of
// statement each is. Quoted strings and identifiers, dollar-quoted strings,
// comments, parentheses and the BEGIN ATOMIC ... END bodies of SQL
// functions are honoured, so a semicolon or keyword inside them counts for
// nothing. The engine and the CLI share it.
package sqltext

import "strings"

// Split cuts text at the semicolons that end SQL statements. It returns
// the complete statements, trimmed and without their semicolons (empty ones
// dropped), and the incomplete rest of text, which is "" when it holds
// nothing but white space and comments.
func Split(text string) (stmts []string, rest string) {
	var st splitState
	start := 0 // where the current statement began
	sc := scanner{text: text}
	for {
		tok, ok := sc.next()
		if !ok {
			break
		}
		if tok.kind != tokSemicolon || st.parens > 0 || st.begins > 0 {
			st.see(text, tok)
			continue
		}
		if s := strings.Trim(text[start:tok.start], sqlSpace); st.content {
			stmts = append(stmts, s)
		}
		start = tok.end
		st = splitState{}
	}
	if sc.open || st.content {
		return stmts, text[start:]
	}
	return stmts, ""
}

// Statements returns the statements of a script whose last statement needs
// no semicolon, as the engine receives them: Split's statements and its
// rest, if any.
func Statements(script string) []string {
	stmts, rest := Split(script)
	if rest = strings.Trim(rest, sqlSpace); rest != "" {
		stmts = append(stmts, rest)
	}
	return stmts
}

// splitState follows a statement to tell which semicolons end it.
type splitState struct {
	content bool // the statement has more than space and comments
	parens  int  // open parentheses: a multi-action rule's (a; b)
	// begins counts open BEGIN (and CASE) blocks in the body of CREATE
	// FUNCTION or PROCEDURE ... BEGIN ATOMIC ... END, as psql does.
	begins  int
	words   int     // the statement's words so far
	routine [4]byte // first letters of its leading words, to spot CREATE [OR REPLACE] FUNCTION|PROCEDURE
}

func (st *splitState) see(text string, tok token) {
	st.content = true
	switch tok.kind {
	case tokOpen:
		st.parens++
	case tokClose:
		if st.parens > 0 {
			st.parens--
		}
	case tokWord:
		word := text[tok.start:tok.end]
		if st.words < len(st.routine) {
			switch {
			case strings.EqualFold(word, "create"), strings.EqualFold(word, "or"), strings.EqualFold(word, "replace"),
				strings.EqualFold(word, "function"), strings.EqualFold(word, "procedure"):
				st.routine[st.words] = word[0] | 0x20
			}
		}
		st.words++
		if st.parens > 0 || !st.inRoutine() {
			return
		}
		switch {
		case strings.EqualFold(word, "begin"):
			st.begins++
		case strings.EqualFold(word, "case"):
			if st.begins > 0 { // CASE ends with END too, inside a body
				st.begins++
			}
		case strings.EqualFold(word, "end"):
			if st.begins > 0 {
				st.begins--
			}
		}
	}
}

// inRoutine reports whether the statement began CREATE [OR REPLACE]
// FUNCTION or PROCEDURE.
func (st *splitState) inRoutine() bool {
	r := st.routine
	return r[0] == 'c' && (r[1] == 'f' || r[1] == 'p' || r[1] == 'o' && r[2] == 'r' && (r[3] == 'f' || r[3] == 'p'))
}
