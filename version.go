package piccolo

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Version is a PostgreSQL server version: 15.18 is {15, 18}. Before
// PostgreSQL 10 the two parts were the major version (9.6 is {9, 6}).
type Version struct {
	Major, Minor int
}

// String returns the version as PostgreSQL writes it, e.g. "15.18".
func (v Version) String() string {
	return strconv.Itoa(v.Major) + "." + strconv.Itoa(v.Minor)
}

// parseVersionNum parses server_version_num: 150018 is 15.18, 90624 is 9.6.
func parseVersionNum(s string) (Version, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return Version{}, fmt.Errorf("piccolo: unexpected server_version_num %q", s)
	}
	if n >= 100000 {
		return Version{Major: n / 10000, Minor: n % 10000}, nil
	}
	return Version{Major: n / 10000, Minor: n / 100 % 100}, nil
}

// Version returns the server's version, parsed from server_version_num so
// that 14.10 is not mistaken for 14.1. Versions before 10 log a warning:
// piccolo-go is not tested on them.
func (e *PostgresEngine) Version(ctx context.Context, opts ...Option) (Version, error) {
	var s string
	err := e.QueryFunc(ctx, Querystring{SQL: "SHOW server_version_num"}, func(rows pgx.Rows) error {
		return rows.Scan(&s)
	}, opts...)
	if err != nil {
		return Version{}, err
	}
	v, err := parseVersionNum(s)
	if err != nil {
		return Version{}, err
	}
	if v.Major < 10 {
		e.logger.WarnContext(ctx, "piccolo: PostgreSQL version is not supported; use 10 or later", "version", v.String())
	}
	return v, nil
}

// PrepDatabase creates the configured extensions if they do not exist.
// Missing privileges log a warning and go on (the extension may be created
// by an administrator); any other error is returned.
func (e *PostgresEngine) PrepDatabase(ctx context.Context) error {
	for _, ext := range e.extensions {
		quoted, err := QuoteIdentifier(ext)
		if err != nil {
			return wrapErr("extension name", err)
		}
		err = e.RunDDL(ctx, "CREATE EXTENSION IF NOT EXISTS "+quoted)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.InsufficientPrivilege {
			e.logger.WarnContext(ctx, "piccolo: cannot create extension: insufficient privilege; ask an administrator to create it",
				"extension", ext, "error", pgErr.Message)
			continue
		}
		if err != nil {
			return wrapErr(fmt.Sprintf("create extension %q", ext), err)
		}
	}
	return nil
}
