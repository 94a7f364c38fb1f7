package protocol

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzCheckName checks the name rule against its definition: a name
// CheckName accepts is 1–64 bytes of valid UTF-8 with no '/', no control
// character or line/paragraph separator, and no surrounding whitespace.
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"ops", "build farm", "Zürich", "🚀", "a/b", " ops", "ops\n", "", strings.Repeat("x", 64),
		strings.Repeat("x", 65), "\xff", "a\u2028b", "a\u0085b", "\u00a0x", "x\u3000", "é" + strings.Repeat("e", 62)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if err := CheckName(s); err != nil {
			return
		}
		switch {
		case len(s) == 0 || len(s) > MaxNameLen:
			t.Fatalf("accepted %q of %d bytes", s, len(s))
		case !utf8.ValidString(s):
			t.Fatalf("accepted invalid UTF-8 %q", s)
		case strings.Contains(s, "/"):
			t.Fatalf("accepted %q with a slash", s)
		case strings.TrimSpace(s) != s:
			t.Fatalf("accepted %q with surrounding whitespace", s)
		}
		for _, r := range s {
			if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
				t.Fatalf("accepted %q with control character %U", s, r)
			}
		}
	})
}

// FuzzParseSessionPath checks that a path it accepts has three valid
// names and renders back to the same string.
func FuzzParseSessionPath(f *testing.F) {
	for _, s := range []string{"alice/laptop/main", "a/b", "a/b/c/d", "/b/c", "a//c", "a/b/", "ä/🚀/x y", " a/b/c", "a/b/c\n", "\xff/b/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseSessionPath(s)
		if err != nil {
			return
		}
		if p.String() != s {
			t.Fatalf("ParseSessionPath(%q).String() = %q", s, p.String())
		}
		for _, c := range []string{p.User, p.Machine, p.Session} {
			if err := CheckName(c); err != nil {
				t.Fatalf("ParseSessionPath(%q) accepted component %q: %v", s, c, err)
			}
		}
	})
}

// FuzzMapName checks that MapName maps any text into the name profile (or
// to "", for which callers have a fallback), never refusing it, and that a
// name already in the profile is left as it is.
func FuzzMapName(f *testing.F) {
	for _, s := range []string{"My Project", "Zürich", "日本語", "..x", "a\u200bb", "ａｌｉｃｅ", strings.Repeat("é ", 40), "ok-name_1.2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := MapName(s)
		if got != "" && CheckNewName(got) != nil {
			t.Fatalf("MapName(%q) = %q: %v", s, got, CheckNewName(got))
		}
		if CheckNewName(s) == nil && !strings.HasSuffix(s, "-") && got != s {
			t.Fatalf("MapName(%q) = %q, want the name unchanged", s, got)
		}
	})
}
