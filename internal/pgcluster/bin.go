package pgcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrNoBinaries means the PostgreSQL server programs (initdb, pg_ctl) are not
// installed where this package looks. The error wrapping it says where it
// looked and what to install.
var ErrNoBinaries = errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found")

// ErrNoBouncer means the pgbouncer program is not installed where
// StartBouncer looks. The error wrapping it says where it looked and what to
// install.
var ErrNoBouncer = errors.New("pgbouncer not found")

// debianBinGlob is where Debian and Ubuntu install each major version's server
// programs; none of them is on $PATH there.
const debianBinGlob = "/usr/lib/postgresql/*/bin"

// debianBouncer is where Debian and Ubuntu install pgbouncer; /usr/sbin is
// not on every user's $PATH.
const debianBouncer = "/usr/sbin/pgbouncer"

// binSearch is where findBinDir looks, so that tests can point it at fake
// installations.
type binSearch struct {
	lookPath  func(file string) (string, error) // exec.LookPath
	pgConfig  func() (string, error)            // output of pg_config --bindir
	debianDir string                            // glob of per-version bin dirs
}

// systemBinSearch looks at the machine's $PATH, pg_config and Debian layout.
func systemBinSearch() binSearch {
	return binSearch{
		lookPath: exec.LookPath,
		pgConfig: func() (string, error) {
			path, err := exec.LookPath("pg_config")
			if err != nil {
				return "", err
			}
			out, err := exec.Command(path, "--bindir").Output()
			return strings.TrimSpace(string(out)), err
		},
		debianDir: debianBinGlob,
	}
}

// FindBinDir returns the directory holding initdb and pg_ctl: the one $PATH
// leads to (symlinks resolved, so that pg_basebackup is found next to them),
// else `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin. The
// error wraps ErrNoBinaries and says what to install.
func FindBinDir() (string, error) {
	return findBinDir(systemBinSearch())
}

func findBinDir(s binSearch) (string, error) {
	if p, err := s.lookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && hasServerBinaries(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
	}
	if dir, err := s.pgConfig(); err == nil && dir != "" && hasServerBinaries(dir) {
		return dir, nil
	}
	if dir := newestVersionDir(s.debianDir); dir != "" {
		return dir, nil
	}
	return "", fmt.Errorf("pgcluster: %w in $PATH, `pg_config --bindir` or %s: install PostgreSQL "+
		"(Debian/Ubuntu: apt-get install postgresql)", ErrNoBinaries, s.debianDir)
}

// hasServerBinaries reports whether dir holds executable initdb and pg_ctl.
func hasServerBinaries(dir string) bool {
	for _, name := range []string{"initdb", "pg_ctl"} {
		if !isExecutable(filepath.Join(dir, name)) {
			return false
		}
	}
	return true
}

// newestVersionDir returns the match of glob (like /usr/lib/postgresql/*/bin)
// with the highest version number that holds the server binaries, or "".
// Versions compare numerically: 16 is newer than 9.6.
func newestVersionDir(glob string) string {
	dirs, _ := filepath.Glob(glob) // the only error is a malformed pattern
	dirs = slices.DeleteFunc(dirs, func(d string) bool { return !hasServerBinaries(d) })
	if len(dirs) == 0 {
		return ""
	}
	version := func(dir string) []int {
		var v []int
		for _, part := range strings.Split(filepath.Base(filepath.Dir(dir)), ".") {
			n, _ := strconv.Atoi(part) // a non-numeric part sorts as 0
			v = append(v, n)
		}
		return v
	}
	return slices.MaxFunc(dirs, func(a, b string) int { return slices.Compare(version(a), version(b)) })
}

// FindBouncer returns the path of the pgbouncer program: the one $PATH leads
// to, else /usr/sbin/pgbouncer (Debian's place, often not on $PATH). The
// error wraps ErrNoBouncer and says what to install.
func FindBouncer() (string, error) {
	return findBouncer(exec.LookPath, debianBouncer)
}

func findBouncer(lookPath func(string) (string, error), fallback string) (string, error) {
	if p, err := lookPath("pgbouncer"); err == nil {
		return p, nil
	}
	if isExecutable(fallback) {
		return fallback, nil
	}
	return "", fmt.Errorf("pgcluster: %w in $PATH or at %s: install PgBouncer "+
		"(Debian/Ubuntu: apt-get install pgbouncer)", ErrNoBouncer, fallback)
}

// isExecutable reports whether path is an executable file.
func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode().Perm()&0o111 != 0
}

// givenOr returns path, or what find finds when path is "".
func givenOr(path string, find func() (string, error)) (string, error) {
	if path != "" {
		return path, nil
	}
	return find()
}
