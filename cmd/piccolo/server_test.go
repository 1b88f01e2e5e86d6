package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo/internal/pgcluster"
)

func TestWithSearchPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		dsn  string
		want string
	}{
		{"", "search_path=s"},
		{"host=db user=me", "host=db user=me search_path=s"},
		{"postgres://me@db:5432/app", "postgres://me@db:5432/app?search_path=s"},
		{"postgresql://me@db/app?sslmode=disable", "postgresql://me@db/app?search_path=s&sslmode=disable"},
		{"postgres://db/app?search_path=other", "postgres://db/app?search_path=s"},
	}
	for _, tt := range tests {
		got, err := withSearchPath(tt.dsn, "s")
		if err != nil || got != tt.want {
			t.Errorf("withSearchPath(%q) = %q, %v; want %q", tt.dsn, got, err, tt.want)
			continue
		}
		cfg, err := pgconn.ParseConfig(got)
		if err != nil {
			t.Errorf("the result %q does not parse: %v", got, err)
			continue
		}
		if sp := cfg.RuntimeParams["search_path"]; sp != "s" {
			t.Errorf("%q connects with search_path %q, want s", got, sp)
		}
	}
}

func TestWithSearchPathHidesPassword(t *testing.T) {
	t.Parallel()
	_, err := withSearchPath("postgres://me:secret@db:bad-port/app%zz", "s")
	if err == nil {
		t.Fatal("want an error for a malformed URL")
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("the error shows the password: %v", err)
	}
}

func TestStartError(t *testing.T) {
	t.Parallel()
	noBinaries := fmt.Errorf("pgcluster: %w in $PATH", pgcluster.ErrNoBinaries)
	err := startError(noBinaries)
	if !errors.Is(err, pgcluster.ErrNoBinaries) {
		t.Errorf("the error does not wrap ErrNoBinaries: %v", err)
	}
	checkOutput(t, "the error", err.Error(), "apt-get install postgresql", "brew install", "--dsn", "DATABASE_URL")
	other := startError(errors.New("initdb failed"))
	if strings.Contains(other.Error(), "apt-get") || !strings.Contains(other.Error(), "initdb failed") {
		t.Errorf("another start failure is explained as missing binaries: %v", other)
	}
}

func TestOpenServerChoosesTheUsersServer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		flag   string
		env    map[string]string
		dsn    string
		origin string
	}{
		{"flag first", "host=a", map[string]string{"DATABASE_URL": "host=b", "PGHOST": "c"}, "host=a", "--dsn"},
		{"then DATABASE_URL", "", map[string]string{"DATABASE_URL": "host=b", "PGHOST": "c"}, "host=b", "DATABASE_URL"},
		{"then PG*", "", map[string]string{"DATABASE_URL": "", "PGPORT": "5433"}, "", "the PG* environment (PGPORT is set)"},
	}
	for _, tt := range tests {
		a := &app{lookupEnv: func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }}
		srv, err := a.openServer(t.Context(), tt.flag)
		if err != nil || srv.dsn != tt.dsn || srv.origin != tt.origin || srv.cluster != nil {
			t.Errorf("%s: openServer = %+v, %v; want dsn %q from %s", tt.name, srv, err, tt.dsn, tt.origin)
		}
	}
}
