package sqltext

// Tokens returns the tokens of stmt as written, without the white space and
// comments between them: words (keywords, identifiers, numbers), quoted
// strings and identifiers with their quotes, and each other byte alone.
// ok is false when stmt ends inside a quoted token or a comment.
func Tokens(stmt string) (tokens []string, ok bool) {
	sc := scanner{text: stmt}
	for tok, more := sc.next(); more; tok, more = sc.next() {
		tokens = append(tokens, stmt[tok.start:tok.end])
	}
	return tokens, !sc.open
}
