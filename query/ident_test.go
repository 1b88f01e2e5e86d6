package query

import "testing"

func TestSnakeCase(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"Name":       "name",
		"ID":         "id",
		"UserID":     "user_id",
		"HTTPServer": "http_server",
		"Name2":      "name2",
		"V2Name":     "v2_name",
		"already_ok": "already_ok",
		"Ärger":      "ärger",
	}
	for in, want := range tests {
		if got := snakeCase(in); got != want {
			t.Errorf("snakeCase(%q) = %q; want %q", in, got, want)
		}
	}
}
