package identity

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/conclave/conclave/protocol"
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

// DefaultMachineName returns a machine name made from the host name,
// mapped into the name profile (protocol.MapName: "Alice's MacBook.local"
// becomes "alice-s-macbook.local"), or "machine" if nothing is left.
func DefaultMachineName() string {
	host, _ := os.Hostname()
	return sanitizeMachineName(host)
}

func sanitizeMachineName(s string) string {
	if s = protocol.MapName(s); protocol.CheckNewName(s) != nil {
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
