package protocol

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen is the longest user, machine, session or channel name, in bytes.
const MaxNameLen = 64

// Name errors.
var (
	ErrNameEmpty   = errors.New("must not be empty")
	ErrNameTooLong = fmt.Errorf("must be at most %d bytes", MaxNameLen)
	ErrNameSlash   = errors.New("must not contain '/'")
	ErrNameControl = errors.New("must not contain control characters")
	ErrNameUTF8    = errors.New("must be valid UTF-8")
	ErrNameSpace   = errors.New("must not start or end with whitespace")
)

// CheckName reports whether s is a valid name component: 1–64 bytes of
// valid UTF-8, no '/', no control characters, no leading or trailing
// whitespace. Users, machines, session handles and channels share the rule.
func CheckName(s string) error {
	switch {
	case s == "":
		return ErrNameEmpty
	case len(s) > MaxNameLen:
		return ErrNameTooLong
	case !utf8.ValidString(s):
		return ErrNameUTF8
	case strings.ContainsRune(s, '/'):
		return ErrNameSlash
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ErrNameControl
		}
	}
	if strings.TrimSpace(s) != s {
		return ErrNameSpace
	}
	return nil
}

// ErrNameProfile is wrapped by every refusal of [CheckNewName]; its text
// is the profile itself, so that the error names the rule.
var ErrNameProfile = errors.New("a new name uses only lowercase letters a-z, digits 0-9, '-', '_' and '.', starts with a letter or digit, and is at most 64 bytes")

// CheckNewName reports whether s may name something new: a user
// (register, user_add), a machine (machine_add, an enrollment link), a
// channel (create_channel, rename_channel) or a session handle (hello).
// New names follow the name profile (docs/PROTOCOL.md §2, "Names"):
// lowercase ASCII letters and digits, '-', '_' and '.', starting with a
// letter or digit, 1–64 bytes. That leaves out by construction every
// invisible, format, bidi-control and whitespace character, full-width and
// cross-script lookalikes, and case variants. Names an existing log holds
// keep working: only creation is checked, and lookups use [CheckName].
// Confusable names (the same [NameSkeleton]) are refused where the names
// of a namespace are known, in projections.
func CheckNewName(s string) error {
	if s == "" {
		return fmt.Errorf("%w: it is empty", ErrNameProfile)
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("%w: it is %d bytes", ErrNameProfile, len(s))
	}
	for i, r := range s {
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9':
		case r == '-' || r == '_' || r == '.':
			if i == 0 {
				return fmt.Errorf("%w: it starts with %q", ErrNameProfile, r)
			}
		default:
			return fmt.Errorf("%w: %s is not", ErrNameProfile, describeRune(r))
		}
	}
	return nil
}

// describeRune names a refused character so that an invisible one can be
// seen in an error message.
func describeRune(r rune) string {
	switch {
	case r == utf8.RuneError:
		return "invalid UTF-8"
	case 'A' <= r && r <= 'Z':
		return fmt.Sprintf("uppercase %q", r)
	case r == ' ':
		return "a space"
	case r < utf8.RuneSelf:
		return fmt.Sprintf("%q", r)
	case unicode.IsSpace(r):
		return fmt.Sprintf("U+%04X (a space character)", r)
	case isBidiControl(r):
		return fmt.Sprintf("U+%04X (a bidirectional control character)", r)
	case unicode.Is(unicode.Cf, r):
		return fmt.Sprintf("U+%04X (an invisible format character)", r)
	case !unicode.IsPrint(r):
		return fmt.Sprintf("U+%04X (not printable)", r)
	}
	return fmt.Sprintf("%q (U+%04X, not ASCII)", r, r)
}

func isBidiControl(r rune) bool {
	return r == '\u061C' || r == '\u200E' || r == '\u200F' || ('\u202A' <= r && r <= '\u202E') || ('\u2066' <= r && r <= '\u2069')
}

// NameSkeleton returns the form in which a new name is compared with the
// existing names of its namespace: two names with the same skeleton are
// confusable, and the newer one is refused. The skeleton folds case, the
// lookalikes that Unicode TR39's confusables list gives within ASCII ('0'
// and 'o', '1' and 'l', "rn" and 'm'), and the separators '_' and '.' into
// '-'. For names a log held before the profile it also drops invisible
// format and whitespace characters and folds full-width forms to ASCII, so
// that "ａｌｉｃｅ" or "alice\u200b" held by an old log keeps a new "alice"
// out. Cross-script lookalikes need no table: a new name is ASCII.
func NameSkeleton(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if '\uFF01' <= r && r <= '\uFF5E' { // full-width ASCII
			r -= 0xFEE0
		}
		r = unicode.ToLower(r)
		switch {
		case unicode.Is(unicode.Cf, r), unicode.IsSpace(r):
			continue
		case r == '0':
			r = 'o'
		case r == '1' || r == '|':
			r = 'l'
		case r == '_' || r == '.':
			r = '-'
		}
		b.WriteRune(r)
	}
	return strings.ReplaceAll(b.String(), "rn", "m")
}

// MapName maps any text (a directory or host name) into the name profile,
// never refusing it: letters are lowercased, Latin letters with accents
// lose them, other non-ASCII letters are dropped, and every run of other
// characters becomes one '-' (control and invisible characters and
// invalid UTF-8 are dropped); leading '-', '_' and '.' and trailing '-'
// go, and it is cut to [MaxNameLen] bytes. It returns "" when nothing is
// left (the caller has a fallback). "My Project" becomes "my-project",
// "Zürich" "zurich".
func MapName(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range s {
		if '\uFF01' <= r && r <= '\uFF5E' {
			r -= 0xFEE0
		}
		r = unicode.ToLower(r)
		if f, ok := latinFold[r]; ok {
			r = f
		}
		switch {
		case r == '-' && (b.Len() == 0 || dash):
			// Leading, or inside a run of other characters, which
			// becomes one '-' anyway ("a -- b" is "a-b").
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9', r == '_', r == '.', r == '-':
			if b.Len() == 0 && (r == '_' || r == '.') {
				continue
			}
			// The run's '-', unless the name's own '-' just stands for
			// it ("a- b" is "a-b"); a name in the profile, such as
			// "a--b", is left as it is.
			if dash && b.Len() > 0 && !strings.HasSuffix(b.String(), "-") {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		case r >= utf8.RuneSelf && unicode.IsLetter(r), unicode.Is(unicode.Mn, r), unicode.Is(unicode.Cf, r),
			unicode.IsControl(r), r == utf8.RuneError:
			// dropped: a letter the profile cannot spell, a combining
			// accent, an invisible or control character, invalid UTF-8
		default:
			dash = true
		}
	}
	out := b.String()
	if len(out) > MaxNameLen {
		out = out[:MaxNameLen]
	}
	return strings.TrimRight(out, "-")
}

// latinFold maps the accented Latin letters of Latin-1 and Latin
// Extended-A to their base letter, for [MapName].
var latinFold = func() map[rune]rune {
	m := map[rune]rune{}
	for base, accented := range map[rune]string{
		'a': "àáâãäåāăą", 'c': "çćĉċč", 'd': "ďđ", 'e': "èéêëēĕėęě", 'g': "ĝğġģ", 'h': "ĥħ",
		'i': "ìíîïĩīĭįı", 'j': "ĵ", 'k': "ķ", 'l': "ĺļľŀł", 'n': "ñńņňŉ", 'o': "òóôõöøōŏő",
		'r': "ŕŗř", 's': "śŝşšß", 't': "ţťŧ", 'u': "ùúûüũūŭůűų", 'w': "ŵ", 'y': "ýÿŷ", 'z': "źżž",
	} {
		for _, r := range accented {
			m[r] = base
		}
	}
	return m
}()

// SessionPath identifies one live session: user/machine/session.
type SessionPath struct {
	User, Machine, Session string
}

// String renders the path as "user/machine/session".
func (p SessionPath) String() string {
	return p.User + "/" + p.Machine + "/" + p.Session
}

// ParseSessionPath parses "user/machine/session"; each of the three
// components must be a valid name.
func ParseSessionPath(s string) (SessionPath, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return SessionPath{}, fmt.Errorf("invalid session path %q: want user/machine/session", s)
	}
	for _, p := range parts {
		if err := CheckName(p); err != nil {
			return SessionPath{}, fmt.Errorf("invalid session path %q: component %q %w", s, p, err)
		}
	}
	return SessionPath{User: parts[0], Machine: parts[1], Session: parts[2]}, nil
}

// Visibility of a channel.
type Visibility string

// Visibility tiers.
const (
	Public   Visibility = "public"
	Unlisted Visibility = "unlisted"
	Private  Visibility = "private"
)

// ParseVisibility parses a visibility token.
func ParseVisibility(s string) (Visibility, error) {
	switch v := Visibility(s); v {
	case Public, Unlisted, Private:
		return v, nil
	}
	return "", fmt.Errorf("invalid visibility %q: want public, unlisted or private", s)
}
