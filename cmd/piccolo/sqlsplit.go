package main

import "strings"

// splitStatements cuts text at the semicolons that end SQL statements,
// ignoring those inside quoted strings and identifiers, dollar-quoted
// strings and comments. It returns the complete statements, trimmed and
// without their semicolons (empty ones dropped), and the incomplete rest
// of text, which is "" when it holds nothing but white space and comments.
func splitStatements(text string) (stmts []string, rest string) {
	start := 0       // where the current statement began
	content := false // the current statement has more than space and comments
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == ';':
			if s := strings.TrimSpace(text[start:i]); content && s != "" {
				stmts = append(stmts, s)
			}
			i++
			start, content = i, false
			continue
		case c == '-' && strings.HasPrefix(text[i:], "--"):
			end := strings.IndexByte(text[i:], '\n')
			if end < 0 {
				return stmts, restOf(text[start:], content)
			}
			i += end + 1
			continue
		case c == '/' && strings.HasPrefix(text[i:], "/*"):
			end, ok := blockCommentEnd(text, i)
			if !ok {
				return stmts, restOf(text[start:], true)
			}
			i = end
			continue
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
			continue
		}
		content = true
		end, ok := tokenEnd(text, i)
		if !ok {
			return stmts, text[start:]
		}
		i = end
	}
	return stmts, restOf(text[start:], content)
}

// restOf is the incomplete rest of a text: "" if it has no content.
func restOf(s string, content bool) string {
	if !content {
		return ""
	}
	return s
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

// tokenEnd returns the index after the token starting at i: a quoted
// string or identifier, a dollar-quoted string, or a single byte. It
// returns false if a quoted token does not end in text.
func tokenEnd(text string, i int) (int, bool) {
	switch c := text[i]; {
	case c == '\'':
		escapes := i > 0 && (text[i-1] == 'e' || text[i-1] == 'E') && (i == 1 || !isIdentByte(text[i-2]))
		return quotedEnd(text, i, '\'', escapes)
	case c == '"':
		return quotedEnd(text, i, '"', false)
	case c == '$':
		if tag, ok := dollarTag(text[i:]); ok {
			end := strings.Index(text[i+len(tag):], tag)
			if end < 0 {
				return len(text), false
			}
			return i + len(tag) + end + len(tag), true
		}
	case isIdentByte(c):
		// A whole word, so that a $ inside an identifier (a$b) is not a quote.
		j := i + 1
		for j < len(text) && (isIdentByte(text[j]) || text[j] == '$') {
			j++
		}
		return j, true
	}
	return i + 1, true
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
