package protocol

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"plain", "alice", nil},
		{"dash dot", "ops-2.x_y", nil},
		{"unicode", "équipe", nil},
		{"inner space", "my chan", nil},
		{"max length", strings.Repeat("a", 64), nil},
		{"empty", "", ErrNameEmpty},
		{"too long", strings.Repeat("a", 65), ErrNameTooLong},
		{"slash", "a/b", ErrNameSlash},
		{"newline", "a\nb", ErrNameControl},
		{"nul", "a\x00b", ErrNameControl},
		{"del", "a\x7fb", ErrNameControl},
		{"line separator", "a\u2028b", ErrNameControl},
		{"bad utf8", "a\xffb", ErrNameUTF8},
		{"leading space", " a", ErrNameSpace},
		{"trailing space", "a ", ErrNameSpace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CheckName(tt.in); !errors.Is(got, tt.want) {
				t.Errorf("CheckName(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseSessionPath(t *testing.T) {
	good, err := ParseSessionPath("alice/wa/cli-1")
	if err != nil || good != (SessionPath{"alice", "wa", "cli-1"}) || good.String() != "alice/wa/cli-1" {
		t.Fatalf("ParseSessionPath = %+v, %v", good, err)
	}
	for _, bad := range []string{"", "a", "a/b", "a/b/c/d", "a//c", "/b/c", "a/b/", "a/b/c\n"} {
		if _, err := ParseSessionPath(bad); err == nil {
			t.Errorf("ParseSessionPath(%q) succeeded, want error", bad)
		}
	}
}

func TestParseVisibility(t *testing.T) {
	for _, v := range []string{"public", "unlisted", "private"} {
		if got, err := ParseVisibility(v); err != nil || string(got) != v {
			t.Errorf("ParseVisibility(%q) = %q, %v", v, got, err)
		}
	}
	if _, err := ParseVisibility("secret"); err == nil {
		t.Error("ParseVisibility(secret) succeeded")
	}
}
