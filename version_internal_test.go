package piccolo

import "testing"

func TestParseVersionNum(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    Version
		wantErr bool
	}{
		{in: "150018", want: Version{15, 18}},
		{in: "140010", want: Version{14, 10}},
		{in: "140001", want: Version{14, 1}},
		{in: "100000", want: Version{10, 0}},
		{in: "90624", want: Version{9, 6}},
		{in: "170002", want: Version{17, 2}},
		{in: "", wantErr: true},
		{in: "15.4", wantErr: true},
		{in: "-1", wantErr: true},
	} {
		got, err := parseVersionNum(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseVersionNum(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
	if s := (Version{14, 10}).String(); s != "14.10" {
		t.Errorf("String() = %q", s)
	}
}
