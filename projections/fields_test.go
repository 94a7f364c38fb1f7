package projections

import "testing"

func TestRedactToken(t *testing.T) {
	tests := []struct{ token, want string }{
		{"", ""},
		{"abcdefghijklmnop", "abcdef…"},
		{"abcdefghijkl", "abcdef…"},
		{"abcdefghijk", "abcde…"},
		{"ab", "a…"},
		{"a", "…"},
		{"ééééééééééééé", "éééééé…"},
		// Already redacted (by a server, before its client redacts):
		// unchanged.
		{"abcdef…", "abcdef…"},
		{"…", "…"},
	}
	for _, tt := range tests {
		if got := RedactToken(tt.token); got != tt.want {
			t.Errorf("RedactToken(%q) = %q, want %q", tt.token, got, tt.want)
		}
	}
}

func TestRedactData(t *testing.T) {
	tests := []struct{ name, data, want string }{
		{"token", `{"channel":"ops","token":"abcdefghijklmnop"}`, `{"channel":"ops","token":"abcdef…"}`},
		{"twice", `{"channel":"ops","token":"abcdef…"}`, `{"channel":"ops","token":"abcdef…"}`},
		{"any case", `{"Token":"abcdefghijklmnop"}`, `{"Token":"abcdef…"}`},
		{"no token", `{ "channel" : "a<b" }`, `{ "channel" : "a<b" }`},
		{"not an object", `[1]`, `[1]`},
		{"not a string", `{"token":5}`, `{"token":5}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(RedactData([]byte(tt.data))); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestDecodeFields(t *testing.T) {
	f := DecodeFields([]byte(`{"channel":"ops","new_name":"dev","user":5}`))
	if f.Channel != "ops" || f.NewName != "dev" || f.User != "" {
		t.Errorf("got %+v", f)
	}
	if f := DecodeFields([]byte(`nope`)); f != (Fields{}) {
		t.Errorf("got %+v from a body that is not JSON", f)
	}
}
