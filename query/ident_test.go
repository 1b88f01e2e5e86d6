package query

import "testing"

// TestSnakeCaseSplitsInitialisms pins the rule for untagged field names:
// words start at a capital after lower case or a digit, a run of capitals
// made of Go's common initialisms is split into them, other runs stay one
// word, digits stay with the word before them.
func TestSnakeCaseSplitsInitialisms(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"Name":        "name",
		"ID":          "id",
		"UserID":      "user_id",
		"HTTPServer":  "http_server",
		"Name2":       "name2",
		"V2Name":      "v2_name",
		"already_ok":  "already_ok",
		"Ärger":       "ärger",
		"HTTPURL":     "http_url",
		"HTTPSURL":    "https_url",
		"HTTPSQL":     "http_sql",
		"UserIDs":     "user_ids",
		"IDs":         "ids",
		"URLsByID":    "urls_by_id",
		"ID2":         "id2",
		"HTTP2Server": "http2_server",
		"UTF8Name":    "utf8_name",
		"OAuth2Token": "o_auth2_token",
		"ABCService":  "abc_service",
		"ABCID":       "abcid",
		"IDSet":       "id_set",
		"X":           "x",
		"Is":          "is",
		"A1":          "a1",
	}
	for in, want := range tests {
		if got := snakeCase(in); got != want {
			t.Errorf("snakeCase(%q) = %q; want %q", in, got, want)
		}
	}
}
