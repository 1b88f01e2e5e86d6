package pgcluster

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeInstall creates dir holding executable files named names.
func fakeInstall(t *testing.T, dir string, names ...string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestFindBinDir(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	real := fakeInstall(t, filepath.Join(root, "real", "bin"), "initdb", "pg_ctl", "pg_basebackup")
	linked := filepath.Join(root, "linked")
	if err := os.MkdirAll(linked, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(real, "initdb"), filepath.Join(linked, "initdb")); err != nil {
		t.Fatal(err)
	}
	clientOnly := fakeInstall(t, filepath.Join(root, "client"), "psql", "pg_config")
	debian := filepath.Join(root, "debian")
	for _, v := range []string{"9.6", "16", "13"} {
		fakeInstall(t, filepath.Join(debian, v, "bin"), "initdb", "pg_ctl")
	}
	fakeInstall(t, filepath.Join(debian, "17", "bin"), "psql") // client only: skipped
	noDebian := filepath.Join(root, "none", "*", "bin")

	inPath := func(dir string) func(string) (string, error) {
		return func(file string) (string, error) {
			p := filepath.Join(dir, file)
			if _, err := os.Stat(p); err != nil {
				return "", exec.ErrNotFound
			}
			return p, nil
		}
	}
	notFound := func(string) (string, error) { return "", exec.ErrNotFound }
	pgConfig := func(dir string) func() (string, error) { return func() (string, error) { return dir, nil } }
	noPgConfig := func() (string, error) { return "", exec.ErrNotFound }

	tests := []struct {
		name string
		s    binSearch
		want string // "" means ErrNoBinaries
	}{
		{"PATH, symlink resolved to the real bin dir", binSearch{inPath(linked), noPgConfig, noDebian}, real},
		{"PATH first", binSearch{inPath(real), pgConfig(filepath.Join(debian, "13", "bin")), debian + "/*/bin"}, real},
		{"pg_config --bindir", binSearch{notFound, pgConfig(real), debian + "/*/bin"}, real},
		{"pg_config of a client-only install is skipped", binSearch{notFound, pgConfig(clientOnly), debian + "/*/bin"}, filepath.Join(debian, "16", "bin")},
		{"newest Debian version, numerically", binSearch{notFound, noPgConfig, debian + "/*/bin"}, filepath.Join(debian, "16", "bin")},
		{"nothing installed", binSearch{inPath(clientOnly), pgConfig(clientOnly), noDebian}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := findBinDir(tt.s)
			if tt.want == "" {
				if !errors.Is(err, ErrNoBinaries) || !strings.Contains(err.Error(), "apt-get install postgresql") {
					t.Fatalf("findBinDir = %q, %v; want ErrNoBinaries saying what to install", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("findBinDir = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestFindBinDirOnThisMachine(t *testing.T) {
	t.Parallel()
	dir, err := FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"initdb", "pg_ctl", "pg_basebackup"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s missing from %s: %v", name, dir, err)
		}
	}
}

func TestFindBouncer(t *testing.T) {
	t.Parallel()
	dir := fakeInstall(t, t.TempDir(), "pgbouncer")
	fallback := filepath.Join(dir, "pgbouncer")
	inPath := func(string) (string, error) { return "/opt/bin/pgbouncer", nil }
	notFound := func(string) (string, error) { return "", exec.ErrNotFound }
	if got, err := findBouncer(inPath, fallback); err != nil || got != "/opt/bin/pgbouncer" {
		t.Errorf("with pgbouncer on $PATH: %q, %v", got, err)
	}
	if got, err := findBouncer(notFound, fallback); err != nil || got != fallback {
		t.Errorf("with only the fallback: %q, %v; want %q", got, err, fallback)
	}
	got, err := findBouncer(notFound, filepath.Join(dir, "missing"))
	if !errors.Is(err, ErrNoBouncer) || !strings.Contains(err.Error(), "apt-get install pgbouncer") {
		t.Errorf("with nothing installed: %q, %v; want ErrNoBouncer saying what to install", got, err)
	}
}
