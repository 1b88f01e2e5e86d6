package pgcluster

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// confMarker starts the block of postgresql.conf that pgcluster owns. Later
// lines win in postgresql.conf, so the block overrides initdb's defaults;
// everything from the marker on is replaced each time the block is written,
// which also replaces a primary's block copied into a standby by
// pg_basebackup.
const confMarker = "# --- pgcluster: everything below is rewritten by pgcluster; use Options.Settings ---"

// reservedSettings are chosen by pgcluster; Port and DSN would lie if
// Options.Settings could change them.
var reservedSettings = []string{"port", "listen_addresses", "unix_socket_directories"}

// settingName is what postgresql.conf accepts as a parameter name, including
// custom ones such as auto_explain.log_min_duration.
var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// validateSettings rejects settings that would corrupt postgresql.conf or
// move the server away from where the Cluster says it is.
func validateSettings(settings map[string]string) error {
	for k, v := range settings {
		if !settingName.MatchString(k) {
			return fmt.Errorf("pgcluster: invalid setting name %q", k)
		}
		if slices.Contains(reservedSettings, strings.ToLower(k)) {
			return fmt.Errorf("pgcluster: setting %q is chosen by pgcluster and cannot be set", k)
		}
		if strings.ContainsAny(v, "\n\r\x00") {
			return fmt.Errorf("pgcluster: value of setting %q contains a line break or NUL", k)
		}
	}
	return nil
}

// serverSettings are the settings of a throw-away cluster listening on
// 127.0.0.1:port and on no Unix socket (a long TMPDIR would make its path
// longer than the 107 bytes allowed): fast (no fsync), many connections for
// tests that open 100+, ready to serve a standby; extra (already validated)
// overrides the defaults.
func serverSettings(port int, extra map[string]string) map[string]string {
	s := map[string]string{
		"port":                    strconv.Itoa(port),
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": "",
		"fsync":                   "off",
		"synchronous_commit":      "off",
		"full_page_writes":        "off",
		"max_connections":         "200",
		"wal_level":               "replica",
		"max_wal_senders":         "10",
	}
	maps.Copy(s, extra)
	return s
}

// writeSettings replaces pgcluster's block at the end of dataDir's
// postgresql.conf with settings, one quoted line each in name order.
func writeSettings(dataDir string, settings map[string]string) error {
	path := filepath.Join(dataDir, "postgresql.conf")
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read server configuration: %w", err)
	}
	text := string(b)
	if i := strings.Index(text, confMarker); i >= 0 {
		text = text[:i]
	}
	var sb strings.Builder
	sb.WriteString(text)
	if text != "" && !strings.HasSuffix(text, "\n") {
		sb.WriteByte('\n')
	}
	sb.WriteString(confMarker + "\n")
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		fmt.Fprintf(&sb, "%s = %s\n", k, quoteConfValue(settings[k]))
	}
	// The file exists, so WriteFile keeps its owner: the server's OS user.
	if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
		return fmt.Errorf("write server configuration: %w", err)
	}
	return nil
}

// quoteConfValue quotes v as a postgresql.conf string, which the server
// accepts for parameters of every type. Backslashes start escapes there, so
// they are doubled, and so are single quotes.
func quoteConfValue(v string) string {
	v = strings.ReplaceAll(v, `\`, `\\`)
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}
