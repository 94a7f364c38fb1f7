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
