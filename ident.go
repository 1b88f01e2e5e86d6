package piccolo

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxIdentifierLen is PostgreSQL's NAMEDATALEN-1: longer names are silently
// truncated by the server, so two long names could collide.
const maxIdentifierLen = 63

// QuoteIdentifier returns name as a quoted SQL identifier ("my ""table"""),
// so that any name, reserved words, mixed case and Unicode included, means
// exactly itself. It rejects, with an error wrapping ErrInvalidIdentifier,
// empty names, names with a NUL byte (which PostgreSQL cannot store), names
// that are not valid UTF-8, and names longer than 63 bytes (which
// PostgreSQL would silently truncate, so two long names could collide).
func QuoteIdentifier(name string) (string, error) {
	switch {
	case name == "":
		return "", fmt.Errorf("%w: empty", ErrInvalidIdentifier)
	case strings.IndexByte(name, 0) >= 0:
		return "", fmt.Errorf("%w: %q contains a NUL byte", ErrInvalidIdentifier, name)
	case !utf8.ValidString(name):
		return "", fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidIdentifier, name)
	case len(name) > maxIdentifierLen:
		return "", fmt.Errorf("%w: %q is longer than %d bytes", ErrInvalidIdentifier, name, maxIdentifierLen)
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`, nil
}

// validSavepointName reports whether name is letters, digits and
// underscores, not starting with a digit, and at most 63 bytes.
func validSavepointName(name string) error {
	if name == "" || len(name) > maxIdentifierLen {
		return fmt.Errorf("%w: %q: want 1 to %d bytes", ErrInvalidSavepointName, name, maxIdentifierLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return fmt.Errorf("%w: %q: use letters, digits and _, not starting with a digit", ErrInvalidSavepointName, name)
		}
	}
	return nil
}
