package query

import (
	"fmt"
	"strconv"
	"strings"
)

// SQL is the escape hatch: a boolean SQL fragment with its own $1..$n
// placeholders bound to args, for conditions the typed columns cannot say:
//
//	query.SQL(`lower("name") = lower($1)`, name)
//
// When the fragment is embedded in a statement its placeholders are
// renumbered after the statement's earlier arguments; $n inside string
// literals, quoted identifiers, dollar quotes and comments is left alone.
// A placeholder without an argument, or an argument without a placeholder,
// fails rendering. The fragment is SQL: never build it from user input.
//
// In a Select with joins, and in a subquery, the query layer writes every
// column as "table"."column" (a joined table under its alias): qualify the
// fragment's columns the same way, or PostgreSQL may find them ambiguous.
func SQL(fragment string, args ...any) Expr {
	return sqlExpr{fragment, append([]any{}, args...)}
}

// sqlExpr is the Expr returned by SQL.
type sqlExpr struct {
	sql  string
	args []any
}

func (e sqlExpr) render(r *renderer, nested bool) {
	out, err := renumber(e.sql, len(r.args), len(e.args))
	if err != nil {
		r.fail(fmt.Errorf("SQL(%q): %w", e.sql, err))
		return
	}
	if nested {
		out = "(" + out + ")"
	}
	r.write(out)
	r.args = append(r.args, e.args...)
}

// renumber shifts the $n placeholders of sql by offset, checking that they
// are exactly $1..$nargs.
func renumber(sql string, offset, nargs int) (string, error) {
	if strings.TrimSpace(sql) == "" {
		return "", fmt.Errorf("empty fragment")
	}
	used := make([]bool, nargs)
	var b strings.Builder
	for i := 0; i < len(sql); {
		n, skip := lexSkip(sql[i:])
		if skip > 0 {
			b.WriteString(sql[i : i+skip])
			i += skip
			continue
		}
		if n < 0 {
			return "", fmt.Errorf("unterminated quote or comment")
		}
		j := i + 1
		for j < len(sql) && sql[j] >= '0' && sql[j] <= '9' {
			j++
		}
		p, err := strconv.Atoi(sql[i+1 : j])
		if err != nil || p < 1 || p > nargs {
			return "", fmt.Errorf("placeholder %s with %d arguments", sql[i:j], nargs)
		}
		used[p-1] = true
		b.WriteString("$" + strconv.Itoa(p+offset))
		i = j
	}
	for k, u := range used {
		if !u {
			return "", fmt.Errorf("argument %d has no placeholder $%d", k+1, k+1)
		}
	}
	return b.String(), nil
}

// lexSkip looks at the start of s. It returns skip > 0 for a token to copy
// as it is (a literal, quoted identifier, comment, word or other text), or
// skip == 0 when s starts with a $n placeholder; n < 0 means an unterminated
// token.
func lexSkip(s string) (n, skip int) {
	c := s[0]
	switch {
	case c == '\'':
		return quotedLen(s, '\'', false)
	case (c == 'E' || c == 'e') && len(s) > 1 && s[1] == '\'':
		n, skip := quotedLen(s[1:], '\'', true)
		return n, skip + 1
	case c == '"':
		return quotedLen(s, '"', false)
	case strings.HasPrefix(s, "--"):
		if end := strings.IndexByte(s, '\n'); end >= 0 {
			return 0, end + 1
		}
		return 0, len(s)
	case strings.HasPrefix(s, "/*"):
		return blockCommentLen(s)
	case c == '$':
		if len(s) > 1 && s[1] >= '0' && s[1] <= '9' {
			return 0, 0
		}
		return dollarQuoteLen(s)
	case isIdentChar(c):
		i := 1
		for i < len(s) && (isIdentChar(s[i]) || s[i] == '$' || (s[i] >= '0' && s[i] <= '9')) {
			i++
		}
		return 0, i
	}
	return 0, 1
}

// isIdentChar reports whether c can start an unquoted identifier or
// keyword (bytes of multi-byte UTF-8 characters included).
func isIdentChar(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}

// quotedLen measures a token quoted with q, where a doubled q is a quote
// character and, in an escape string, a backslash escapes the next byte.
func quotedLen(s string, q byte, backslash bool) (n, skip int) {
	for i := 1; i < len(s); i++ {
		switch {
		case backslash && s[i] == '\\':
			i++
		case s[i] == q && i+1 < len(s) && s[i+1] == q:
			i++
		case s[i] == q:
			return 0, i + 1
		}
	}
	return -1, 0
}

// blockCommentLen measures a /* */ comment; PostgreSQL's nest.
func blockCommentLen(s string) (n, skip int) {
	depth := 0
	for i := 0; i+1 < len(s); i++ {
		switch s[i : i+2] {
		case "/*":
			depth++
			i++
		case "*/":
			depth--
			i++
			if depth == 0 {
				return 0, i + 1
			}
		}
	}
	return -1, 0
}

// dollarQuoteLen measures $tag$...$tag$; a lone $ is one byte of text.
func dollarQuoteLen(s string) (n, skip int) {
	end := strings.IndexByte(s[1:], '$')
	if end < 0 {
		return 0, 1
	}
	tag := s[:end+2]
	for i := 1; i < len(tag)-1; i++ {
		if !isIdentChar(tag[i]) && (tag[i] < '0' || tag[i] > '9') {
			return 0, 1
		}
	}
	close := strings.Index(s[len(tag):], tag)
	if close < 0 {
		return -1, 0
	}
	return 0, len(tag) + close + len(tag)
}
