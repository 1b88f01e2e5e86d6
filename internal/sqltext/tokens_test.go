package sqltext

import (
	"slices"
	"testing"
)

func TestTokens(t *testing.T) {
	t.Parallel()
	tests := []struct {
		stmt string
		want []string
		ok   bool
	}{
		{"BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY", []string{"BEGIN", "ISOLATION", "LEVEL", "SERIALIZABLE", ",", "READ", "ONLY"}, true},
		{"start /* a; comment */ transaction -- read only\n read\twrite", []string{"start", "transaction", "read", "write"}, true},
		{`SAVEPOINT "My ""sp"""`, []string{"SAVEPOINT", `"My ""sp"""`}, true},
		{"COMMIT PREPARED 'gid'", []string{"COMMIT", "PREPARED", "'gid'"}, true},
		{"", nil, true},
		{"SAVEPOINT 'open", []string{"SAVEPOINT"}, false},
	}
	for _, tt := range tests {
		got, ok := Tokens(tt.stmt)
		if !slices.Equal(got, tt.want) || ok != tt.ok {
			t.Errorf("Tokens(%q) = %q, %v; want %q, %v", tt.stmt, got, ok, tt.want, tt.ok)
		}
	}
}
