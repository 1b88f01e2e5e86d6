package query

import (
	"strings"
	"unicode"

	"github.com/piccolo-go/piccolo"
)

// quoteIdent quotes a table, column, index or schema name; errors wrap
// piccolo.ErrInvalidIdentifier.
func quoteIdent(name string) (string, error) {
	return piccolo.QuoteIdentifier(name)
}

// quoteQualified quotes schema.name, or name alone when schema is empty.
func quoteQualified(schema, name string) (string, error) {
	q, err := quoteIdent(name)
	if err != nil || schema == "" {
		return q, err
	}
	s, err := quoteIdent(schema)
	if err != nil {
		return "", err
	}
	return s + "." + q, nil
}

// snakeCase turns a Go field name into a column name: Name → name,
// UserID → user_id, HTTPServer → http_server, Name2 → name2.
func snakeCase(s string) string {
	rs := []rune(s)
	var b strings.Builder
	for i, r := range rs {
		if unicode.IsUpper(r) && i > 0 {
			prev := rs[i-1]
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && nextLower) {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}
