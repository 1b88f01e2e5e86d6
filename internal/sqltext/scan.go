package sqltext

import "strings"

type tokenKind uint8

const (
	tokWord      tokenKind = iota // an unquoted keyword, identifier or number
	tokQuoted                     // a string, quoted identifier or dollar-quoted string
	tokSemicolon                  // ;
	tokOpen                       // (
	tokClose                      // )
	tokOther                      // any other byte
)

// token is text[start:end], of kind.
type token struct {
	kind       tokenKind
	start, end int
}

// sqlSpace is PostgreSQL's white space: ASCII only (its lexer reads other
// bytes, U+3000 among them, as part of identifiers).
const sqlSpace = " \t\n\r\f\v"

// scanner yields the tokens of text, skipping white space and comments.
type scanner struct {
	text string
	pos  int
	// open is set when text ended inside a quoted token or a block comment.
	open bool
}

// next returns the next token, or false at the end of the text.
func (s *scanner) next() (token, bool) {
	text := s.text
	for s.pos < len(text) {
		i := s.pos
		switch c := text[i]; {
		case strings.IndexByte(sqlSpace, c) >= 0:
			s.pos++
		case c == '-' && strings.HasPrefix(text[i:], "--"):
			end := strings.IndexByte(text[i:], '\n')
			if end < 0 {
				s.pos = len(text) // a line comment may end the text
				return token{}, false
			}
			s.pos = i + end + 1
		case c == '/' && strings.HasPrefix(text[i:], "/*"):
			end, ok := blockCommentEnd(text, i)
			s.pos = end
			if !ok {
				s.open = true
				return token{}, false
			}
		default:
			end, kind, ok := tokenEnd(text, i)
			s.pos = end
			if !ok {
				s.open = true
				return token{}, false
			}
			return token{kind: kind, start: i, end: end}, true
		}
	}
	return token{}, false
}

// blockCommentEnd returns the index after the /* comment */ starting at i
// (comments nest in PostgreSQL), or false if it does not end in text.
func blockCommentEnd(text string, i int) (int, bool) {
	depth := 0
	for i < len(text) {
		switch {
		case strings.HasPrefix(text[i:], "/*"):
			depth++
			i += 2
		case strings.HasPrefix(text[i:], "*/"):
			depth--
			i += 2
			if depth == 0 {
				return i, true
			}
		default:
			i++
		}
	}
	return i, false
}

// tokenEnd returns the index after the token starting at i and its kind.
// It returns false if a quoted token does not end in text.
func tokenEnd(text string, i int) (int, tokenKind, bool) {
	switch c := text[i]; {
	case c == '\'':
		escapes := i > 0 && (text[i-1] == 'e' || text[i-1] == 'E') && (i == 1 || !isIdentByte(text[i-2]))
		end, ok := quotedEnd(text, i, '\'', escapes)
		return end, tokQuoted, ok
	case c == '"':
		end, ok := quotedEnd(text, i, '"', false)
		return end, tokQuoted, ok
	case c == '$':
		if tag, ok := dollarTag(text[i:]); ok {
			end := strings.Index(text[i+len(tag):], tag)
			if end < 0 {
				return len(text), tokQuoted, false
			}
			return i + len(tag) + end + len(tag), tokQuoted, true
		}
	case c == ';':
		return i + 1, tokSemicolon, true
	case c == '(':
		return i + 1, tokOpen, true
	case c == ')':
		return i + 1, tokClose, true
	case isIdentByte(c):
		// A whole word, so that a $ inside an identifier (a$b) is not a quote.
		j := i + 1
		for j < len(text) && (isIdentByte(text[j]) || text[j] == '$') {
			j++
		}
		// E'...' is one string: the E is not a word of its own.
		if j == i+1 && (c == 'e' || c == 'E') && j < len(text) && text[j] == '\'' {
			return tokenEnd(text, j)
		}
		return j, tokWord, true
	}
	return i + 1, tokOther, true
}

// quotedEnd returns the index after a string quoted with q starting at i,
// where a doubled quote stands for itself and, with escapes (E'...'), a
// backslash escapes the next byte.
func quotedEnd(text string, i int, q byte, escapes bool) (int, bool) {
	for j := i + 1; j < len(text); j++ {
		switch text[j] {
		case '\\':
			if escapes {
				j++
			}
		case q:
			if j+1 < len(text) && text[j+1] == q {
				j++
				continue
			}
			return j + 1, true
		}
	}
	return len(text), false
}

// dollarTag returns the opening tag of a dollar-quoted string at the start
// of s ($$ or $name$), or false: $1 is a parameter, not a quote.
func dollarTag(s string) (string, bool) {
	for j := 1; j < len(s); j++ {
		c := s[j]
		switch {
		case c == '$':
			return s[:j+1], true
		case c >= '0' && c <= '9' && j == 1:
			return "", false
		case !isIdentByte(c):
			return "", false
		}
	}
	return "", false
}

// isIdentByte reports whether c can be part of an unquoted identifier.
func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}
