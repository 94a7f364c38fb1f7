package identity

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestConfigDir(t *testing.T) {
	t.Setenv("CONCLAVE_CONFIG_DIR", "/from/env")
	if got, err := ConfigDir("/from/flag"); err != nil || got != "/from/flag" {
		t.Errorf("with flag: got (%q, %v), want /from/flag", got, err)
	}
	if got, err := ConfigDir(""); err != nil || got != "/from/env" {
		t.Errorf("with env: got (%q, %v), want /from/env", got, err)
	}
	t.Setenv("CONCLAVE_CONFIG_DIR", "")
	base, err := os.UserConfigDir()
	if err != nil {
		t.Skipf("no user config dir here: %v", err)
	}
	if got, err := ConfigDir(""); err != nil || got != filepath.Join(base, "conclave") {
		t.Errorf("default: got (%q, %v), want %s", got, err, filepath.Join(base, "conclave"))
	}
}

func TestSanitizeMachineName(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"wa", "wa"},
		{"MacBook-Pro.local", "macbook-pro.local"},
		{"a/b", "a-b"},
		{"my host", "my-host"},
		{"Alice's MacBook.local", "alice-s-macbook.local"},
		{"x\x00y\x7fz\n", "xyz"},
		{"bad\xffutf8", "badutf8"},
		{"", "machine"},
		{"///", "machine"},
		{"\x01\x02", "machine"},
		{"日本", "machine"},
		{strings.Repeat("h", 80), strings.Repeat("h", 64)},
		{strings.Repeat("é", 40), strings.Repeat("e", 40)},
		{strings.Repeat("a", 63) + "é", strings.Repeat("a", 63) + "e"},
	}
	for _, tc := range tests {
		got := sanitizeMachineName(tc.in)
		if got != tc.want {
			t.Errorf("sanitizeMachineName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDefaultMachineName(t *testing.T) {
	got := DefaultMachineName()
	if err := checkName("machine name", got); err != nil {
		t.Errorf("DefaultMachineName() = %q: %v", got, err)
	}
	if len(got) > 64 || !utf8.ValidString(got) {
		t.Errorf("DefaultMachineName() = %q: too long or invalid UTF-8", got)
	}
}

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"alice", true},
		{"wa.local", true},
		{"é", true},
		{strings.Repeat("a", 64), true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{"a/b", false},
		{"a\x00b", false},
		{"a\u2028b", false},
		{" a", false},
		{"a ", false},
		{"bad\xff", false},
	} {
		if err := checkName("name", tc.in); (err == nil) != tc.ok {
			t.Errorf("checkName(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}
