package query

import (
	"fmt"
	"strconv"
	"strings"
)

// fieldTag is a parsed `piccolo:"..."` struct tag; see the package
// documentation for its grammar.
type fieldTag struct {
	skip     bool
	name     string
	pk       bool
	unique   bool
	null     bool
	notNull  bool
	def      string
	length   int
	sqlType  string
	index    bool
	idxName  string
	fkTable  string
	fkColumn string
	onDelete string
}

// valued are the options that take a value.
var valued = map[string]bool{"default": true, "length": true, "type": true, "fk": true, "ondelete": true}

// onDeleteActions maps the ondelete= spellings to their SQL.
var onDeleteActions = map[string]string{
	"cascade":     "CASCADE",
	"restrict":    "RESTRICT",
	"set null":    "SET NULL",
	"set default": "SET DEFAULT",
	"no action":   "NO ACTION",
}

// parseTag parses a piccolo struct tag. Errors name the offending option;
// the caller adds the struct and field.
func parseTag(tag string) (fieldTag, error) {
	var t fieldTag
	if tag == "-" {
		t.skip = true
		return t, nil
	}
	parts, err := splitTag(tag)
	if err != nil {
		return t, err
	}
	t.name = parts[0]
	seen := map[string]bool{}
	for _, p := range parts[1:] {
		key, val, hasVal := strings.Cut(p, "=")
		key = strings.TrimSpace(key)
		if seen[key] {
			return t, fmt.Errorf("option %q given twice", key)
		}
		seen[key] = true
		if err := t.setOption(key, val, hasVal); err != nil {
			return t, err
		}
	}
	return t, t.check()
}

// setOption applies one key[=value] option.
func (t *fieldTag) setOption(key, val string, hasVal bool) error {
	flags := map[string]*bool{"pk": &t.pk, "unique": &t.unique, "null": &t.null, "notnull": &t.notNull}
	if f, ok := flags[key]; ok {
		if hasVal {
			return fmt.Errorf("option %q takes no value", key)
		}
		*f = true
		return nil
	}
	if key == "index" {
		t.index, t.idxName = true, val
		if hasVal && val == "" {
			return fmt.Errorf("option index= needs a name")
		}
		return nil
	}
	if !valued[key] {
		return fmt.Errorf("unknown option %q", key)
	}
	if !hasVal || val == "" {
		return fmt.Errorf("option %q needs a value (%s=...)", key, key)
	}
	switch key {
	case "default":
		if err := checkDefault(val); err != nil {
			return err
		}
		t.def = val
	case "length":
		n, err := strconv.Atoi(val)
		if err != nil || n < 1 || n > 10485760 {
			return fmt.Errorf("length=%s: want an integer from 1 to 10485760", val)
		}
		t.length = n
	case "type":
		if err := checkSQLType(val); err != nil {
			return err
		}
		t.sqlType = val
	case "fk":
		return t.setFK(val)
	case "ondelete":
		action, ok := onDeleteActions[strings.ToLower(val)]
		if !ok {
			return fmt.Errorf("ondelete=%s: want cascade, restrict, set null, set default or no action", val)
		}
		t.onDelete = action
	}
	return nil
}

// setFK parses TABLE or TABLE(COLUMN).
func (t *fieldTag) setFK(val string) error {
	table, col, hasCol := strings.Cut(val, "(")
	t.fkTable, t.fkColumn = table, "id"
	if hasCol {
		if !strings.HasSuffix(col, ")") || len(col) < 2 {
			return fmt.Errorf("fk=%s: want TABLE or TABLE(COLUMN)", val)
		}
		t.fkColumn = col[:len(col)-1]
	}
	if t.fkTable == "" {
		return fmt.Errorf("fk=%s: no table", val)
	}
	return nil
}

// check rejects combinations of options that contradict each other.
func (t *fieldTag) check() error {
	switch {
	case t.null && t.notNull:
		return fmt.Errorf("options null and notnull contradict each other")
	case t.pk && t.null:
		return fmt.Errorf("a primary key cannot be null")
	case t.length > 0 && t.sqlType != "":
		return fmt.Errorf("give length or type, not both")
	case t.onDelete != "" && t.fkTable == "":
		return fmt.Errorf("ondelete needs fk")
	}
	return nil
}

// splitTag splits on commas that are outside parentheses and single-quoted
// strings, and rejects unbalanced ones.
func splitTag(tag string) ([]string, error) {
	var parts []string
	depth, start, quoted := 0, 0, false
	for i := 0; i < len(tag); i++ {
		switch c := tag[i]; {
		case c == '\'':
			quoted = !quoted // '' inside a string toggles twice
		case quoted:
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("unbalanced ) in %q", tag)
			}
		case c == ',' && depth == 0:
			parts = append(parts, tag[start:i])
			start = i + 1
		}
	}
	if quoted || depth != 0 {
		return nil, fmt.Errorf("unbalanced quote or parenthesis in %q", tag)
	}
	return append(parts, tag[start:]), nil
}

// checkSQLType accepts the characters PostgreSQL type names use, so that a
// type= option cannot smuggle a statement into CREATE TABLE.
func checkSQLType(s string) error {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune(" _(),[].", r):
		default:
			return fmt.Errorf("type=%s: %q is not allowed in a type name", s, r)
		}
	}
	return nil
}

// checkDefault rejects a default= expression that could end its statement
// or comment out the rest: ';', '--', '/*' or NUL outside a string literal.
func checkDefault(s string) error {
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\'' {
			quoted = !quoted
			continue
		}
		if c == 0 || (!quoted && (c == ';' || strings.HasPrefix(s[i:], "--") || strings.HasPrefix(s[i:], "/*"))) {
			return fmt.Errorf("default=%s: ';', '--', '/*' and NUL are not allowed outside a string", s)
		}
	}
	return nil
}
