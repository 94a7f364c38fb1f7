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

// hostileNames are the names issue 12 registered successfully before the
// name profile: lookalikes and invisible characters. CheckNewName refuses
// every one; tests elsewhere use them over the real server and the CLI.
var hostileNames = []struct{ name, in, says string }{
	{"cyrillic a", "\u0430lice", "U+0430, not ASCII"},
	{"uppercase", "Alice", "uppercase 'A'"},
	{"full-width", "ａｌｉｃｅ", "U+FF41, not ASCII"},
	{"division slash", "alice∕laptop", "U+2215, not ASCII"},
	{"zero-width space", "alice\u200b", "U+200B (an invisible format character)"},
	{"right-to-left override", "alice\u202e", "U+202E (a bidirectional control character)"},
	{"soft hyphen", "ali\u00adce", "U+00AD (an invisible format character)"},
	{"byte order mark", "\ufeffalice", "U+FEFF (an invisible format character)"},
	{"inner space", "al ice", "a space"},
	{"no-break space", "al\u00a0ice", "U+00A0 (a space character)"},
	{"leading dash", "-alice", "starts with '-'"},
	{"leading dot", ".alice", "starts with '.'"},
	{"slash", "a/b", "'/'"},
	{"newline", "a\nb", `'\n'`},
	{"empty", "", "it is empty"},
	{"too long", strings.Repeat("a", 65), "it is 65 bytes"},
	{"bad utf8", "a\xffb", "invalid UTF-8"},
}

func TestCheckNewName(t *testing.T) {
	for _, ok := range []string{"alice", "a", "ops-2.x_y", "0day", "cli-1234", "web-0a1b2c3d", strings.Repeat("a", 64)} {
		if err := CheckNewName(ok); err != nil {
			t.Errorf("CheckNewName(%q) = %v, want nil", ok, err)
		}
	}
	for _, tt := range hostileNames {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckNewName(tt.in)
			if !errors.Is(err, ErrNameProfile) {
				t.Fatalf("CheckNewName(%q) = %v, want ErrNameProfile", tt.in, err)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("CheckNewName(%q) = %q, want it to say %q", tt.in, err, tt.says)
			}
		})
	}
}

func TestNameSkeleton(t *testing.T) {
	same := [][]string{
		{"alice", "Alice", "ALICE", "ａｌｉｃｅ", "alice\u200b", "\ufeffal\u00adice", "a1ice"},
		{"modem", "rnodern", "modern"},
		{"o0", "00", "oo", "OO"},
		{"my-proj", "my_proj", "my.proj", "MY-PROJ"},
		{"build1", "buildl", "build|"},
	}
	for _, group := range same {
		for _, n := range group[1:] {
			if a, b := NameSkeleton(group[0]), NameSkeleton(n); a != b {
				t.Errorf("NameSkeleton(%q) = %q, NameSkeleton(%q) = %q, want the same", group[0], a, n, b)
			}
		}
	}
	for _, pair := range [][2]string{{"alice", "alicia"}, {"bob", "rob"}, {"clara", "dara"}, {"ian", "lan"}, {"vw", "vvv"}} {
		if NameSkeleton(pair[0]) == NameSkeleton(pair[1]) {
			t.Errorf("NameSkeleton: %q and %q confused (%q)", pair[0], pair[1], NameSkeleton(pair[0]))
		}
	}
}

func TestMapName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"fleet", "fleet"},
		{"My Project", "my-project"},
		{"  spaced  out ", "spaced-out"},
		{"Zürich Über Straße", "zurich-uber-strase"},
		{"__init__", "init__"},
		{"..hidden", "hidden"},
		{"a -- b", "a-b"},
		{"0--0", "0--0"},
		{"a- b", "a-b"},
		{"a -b", "a-b"},
		{"--lead", "lead"},
		{"alice\u200b\u202e\u00ad\ufeff", "alice"},
		{"ａｌｉｃｅ", "alice"},
		{"日本語", ""},
		{"v1.2_rc", "v1.2_rc"},
		{"", ""},
		{strings.Repeat("a", 70), strings.Repeat("a", 64)},
	}
	for _, tt := range tests {
		got := MapName(tt.in)
		if got != tt.want {
			t.Errorf("MapName(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got != "" && CheckNewName(got) != nil {
			t.Errorf("MapName(%q) = %q, outside the profile: %v", tt.in, got, CheckNewName(got))
		}
	}
}
