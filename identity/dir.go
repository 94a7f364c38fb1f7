package identity

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ConfigDir returns the config dir: flag (the --config-dir value) if set,
// else $CONCLAVE_CONFIG_DIR if set, else os.UserConfigDir()/conclave. It
// does not create the directory.
func ConfigDir(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if env := os.Getenv("CONCLAVE_CONFIG_DIR"); env != "" {
		return env, nil
	}
	base, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("cannot find a config dir (pass --config-dir or set CONCLAVE_CONFIG_DIR): %w", err)
	}
	return filepath.Join(base, "conclave"), nil
}

// maxNameLen is the longest name, in bytes (protocol.MaxNameLen).
const maxNameLen = 64

// DefaultMachineName returns a machine name made from the host name: '/'
// and whitespace become '-', control characters and invalid UTF-8 are
// dropped, and it is cut to at most 64 bytes on a character boundary. It
// returns "machine" if nothing is left.
func DefaultMachineName() string {
	host, _ := os.Hostname()
	return sanitizeMachineName(host)
}

func sanitizeMachineName(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '/' || unicode.IsSpace(r):
			return '-'
		case unicode.IsControl(r) || r == utf8.RuneError:
			return -1
		}
		return r
	}, s)
	s = strings.Trim(s, "-")
	for len(s) > maxNameLen {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	if s == "" {
		return "machine"
	}
	return s
}

// checkName applies the rule protocol.CheckName applies to user, machine,
// session and channel names: 1–64 bytes of valid UTF-8, no '/', no control
// characters (nor U+2028/U+2029), no leading or trailing whitespace. It is a
// copy so that identity does not import protocol yet; switch to
// protocol.CheckName when it does.
func checkName(what, s string) error {
	switch {
	case s == "":
		return errors.New("missing " + what)
	case len(s) > maxNameLen, !utf8.ValidString(s), strings.ContainsRune(s, '/'),
		hasControl(s), strings.ContainsAny(s, "\u2028\u2029"), strings.TrimSpace(s) != s:
		return fmt.Errorf("invalid %s %q", what, s)
	}
	return nil
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}
