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

// snakeCase turns a Go field name into a column name. Words start at a
// capital after a lower-case letter or digit, and at the last capital of a
// run of capitals followed by lower case (HTTPServer → http_server). A run
// of capitals made entirely of Go's common initialisms is split into them
// (HTTPURL → http_url, UserIDs → user_ids); any other run stays one word
// (ABCService → abc_service). Digits stay with the word before them
// (Name2 → name2, UTF8Name → utf8_name), and a single capital is a word of
// its own: OAuth2Token → o_auth2_token.
func snakeCase(s string) string {
	rs := []rune(s)
	var words []string
	for i := 0; i < len(rs); {
		j := i + 1
		if !unicode.IsUpper(rs[i]) {
			for j < len(rs) && !unicode.IsUpper(rs[j]) {
				j++
			}
			words = append(words, string(rs[i:j]))
			i = j
			continue
		}
		for j < len(rs) && (unicode.IsUpper(rs[j]) || unicode.IsDigit(rs[j])) {
			j++
		}
		run := string(rs[i:j])
		switch {
		case j == len(rs) || !unicode.IsLower(rs[j]):
			// a run at the end, or before a non-letter: all initialisms
		case rs[j] == 's' && (j+1 == len(rs) || !unicode.IsLower(rs[j+1])) && splitInitialisms(run) != nil:
			run += "s" // a plural: IDs, URLs
			j++
		case j-i > 1 && unicode.IsUpper(rs[j-1]):
			j-- // the last capital starts the next word
			run = string(rs[i:j])
		default:
			// one capital and what follows: a word
			for j < len(rs) && !unicode.IsUpper(rs[j]) {
				j++
			}
			words = append(words, string(rs[i:j]))
			i = j
			continue
		}
		if parts := splitInitialisms(strings.TrimSuffix(run, "s")); parts != nil && len(run) > 1 {
			parts[len(parts)-1] += run[len(strings.TrimSuffix(run, "s")):]
			words = append(words, parts...)
		} else {
			words = append(words, run)
		}
		i = j
	}
	return strings.ToLower(strings.Join(words, "_"))
}

// initialisms are the words Go names spell in capitals (the list Go's
// linters use), which a run of capitals is split into.
var initialisms = []string{
	"ACL", "API", "ASCII", "CPU", "CSS", "DNS", "EOF", "GUID", "HTML", "HTTP", "HTTPS", "ID", "IP",
	"JSON", "LHS", "QPS", "RAM", "RHS", "RPC", "SLA", "SMTP", "SQL", "SSH", "TCP", "TLS", "TTL",
	"UDP", "UI", "UID", "URI", "URL", "UTF8", "UUID", "VM", "XML", "XMPP", "XSRF", "XSS",
}

// splitInitialisms splits a run of capitals and digits into initialisms,
// digits joining the one before them, or returns nil if the run is not made
// of them.
func splitInitialisms(run string) []string {
	if run == "" {
		return []string{}
	}
	for _, w := range initialisms {
		if !strings.HasPrefix(run, w) {
			continue
		}
		n := len(w)
		for n < len(run) && run[n] >= '0' && run[n] <= '9' {
			n++
		}
		if rest := splitInitialisms(run[n:]); rest != nil {
			return append([]string{run[:n]}, rest...)
		}
	}
	return nil
}
