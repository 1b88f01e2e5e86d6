package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/piccolo-go/piccolo/internal/pgcluster"
)

// stopTimeout bounds stopping a throw-away cluster and dropping the
// playground's schema, which run even after Ctrl-C.
const stopTimeout = time.Minute

// server is the PostgreSQL server a command works on: the one the user
// named, or a throw-away cluster of its own.
type server struct {
	dsn     string             // "" means the PG* environment
	origin  string             // where the server came from, for humans
	cluster *pgcluster.Cluster // the throw-away cluster; nil on the user's server
}

// pgServerVars are the libpq variables that name a server or a login; any of
// them set means the user has a server in mind.
func pgServerVars() []string {
	return []string{"PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSERVICE"}
}

// openServer picks the server: --dsn, else DATABASE_URL, else the PG*
// environment, else a throw-away cluster started from the machine's
// PostgreSQL programs. The caller must close the server.
func (a *app) openServer(ctx context.Context, dsn string) (*server, error) {
	if dsn != "" {
		return &server{dsn: dsn, origin: "--dsn"}, nil
	}
	if v, ok := a.lookupEnv("DATABASE_URL"); ok && v != "" {
		return &server{dsn: v, origin: "DATABASE_URL"}, nil
	}
	for _, k := range pgServerVars() {
		if v, ok := a.lookupEnv(k); ok && v != "" {
			return &server{origin: "the PG* environment (" + k + " is set)"}, nil
		}
	}
	fmt.Fprintln(a.stderr, "No server given (--dsn, DATABASE_URL, PG*): starting a throw-away PostgreSQL cluster...")
	c, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		return nil, startError(err)
	}
	fmt.Fprintf(a.stderr, "Started it on 127.0.0.1:%d with its data in %s; both go away on exit.\n", c.Port(), c.DataDir())
	return &server{
		dsn:     c.DSN("postgres"),
		origin:  fmt.Sprintf("a throw-away cluster on 127.0.0.1:%d", c.Port()),
		cluster: c,
	}, nil
}

// startError explains a failed start of the throw-away cluster, saying what
// to install when PostgreSQL is missing.
func startError(err error) error {
	if !errors.Is(err, pgcluster.ErrNoBinaries) {
		return fmt.Errorf("start a throw-away PostgreSQL cluster: %w", err)
	}
	return fmt.Errorf(`no PostgreSQL server given and none installed to start one: %w

Install PostgreSQL's server programs (any version from 13 on):
	Debian, Ubuntu:  sudo apt-get install postgresql
	Fedora, RHEL:    sudo dnf install postgresql-server
	Alpine:          sudo apk add postgresql
	macOS:           brew install postgresql@17
or point piccolo at a server you have: --dsn postgres://user@host:5432/db,
or DATABASE_URL, or the PG* variables (PGHOST, PGPORT, PGUSER...)`, err)
}

// close stops the throw-away cluster, removing its files; on the user's
// server it does nothing. It runs even when ctx has ended.
func (s *server) close(ctx context.Context) error {
	if s.cluster == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	if err := s.cluster.Stop(ctx); err != nil {
		return fmt.Errorf("stop the throw-away cluster: %w", err)
	}
	return nil
}

// withSearchPath returns dsn (a URL, a key=value string or "" for the PG*
// environment) with search_path set to schema, so that unqualified names
// resolve in schema and nothing is created anywhere else.
func withSearchPath(dsn, schema string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // *url.Error quotes the URL, password included
			}
			return "", fmt.Errorf("parse DSN: %w", err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	return strings.TrimSpace(dsn + " search_path=" + schema), nil
}
