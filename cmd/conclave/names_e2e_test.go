package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestNewNamesFollowTheProfile: every verb that creates a name (register,
// --machine, machine add, user add, channel create and rename, web --name,
// tail --as, bridge --as) refuses a lookalike or invisible name with one
// `error:` line naming the rule, before it reaches the server; a name
// inside the profile that reads as an existing one is refused by the
// server, naming the existing user.
func TestNewNamesFollowTheProfile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	url, _, _ := startServer(t)
	tmp := t.TempDir()
	a := []string{"CONCLAVE_CONFIG_DIR=" + filepath.Join(tmp, "A")}
	b := []string{"CONCLAVE_CONFIG_DIR=" + filepath.Join(tmp, "B")}
	ok(t, a, "register", "alice", "--server", url, "--machine", "wa")
	ok(t, a, "channel", "create", "ops")
	key := strings.TrimSpace(ok(t, b, "key"))

	const rule = "a new name uses only lowercase letters a-z, digits 0-9, '-', '_' and '.', starts with a letter or digit"
	for _, n := range []struct{ what, name, says string }{
		{"Cyrillic a", "\u0430lice", `"аlice": ` + rule + `, and is at most 64 bytes: 'а' (U+0430, not ASCII) is not`},
		{"uppercase", "Alice", "uppercase 'A' is not"},
		{"full-width", "ａｌｉｃｅ", "U+FF41, not ASCII"},
		{"division slash", "alice∕laptop", "U+2215, not ASCII"},
		{"zero-width space", "alice\u200b", `"alice\u200b": ` + rule},
		{"right-to-left override", "\u202eecila", `"\u202eecila": ` + rule},
		{"soft hyphen", "ali\u00adce", "U+00AD (an invisible format character)"},
		{"byte order mark", "\ufeffalice", "U+FEFF (an invisible format character)"},
	} {
		t.Run(n.what, func(t *testing.T) {
			fails(t, 1, fmt.Sprintf("invalid username %q: %s", n.name, rule), b, "register", n.name, "--server", url)
			fails(t, 1, "invalid machine name ", b, "register", "bob", "--server", url, "--machine", n.name)
			fails(t, 1, n.says, a, "machine", "add", n.name, "--pubkey", key)
			fails(t, 1, "invalid username ", a, "user", "add", n.name, "--machine", "m", "--pubkey", key)
			fails(t, 1, "invalid channel name ", a, "channel", "create", n.name)
			fails(t, 1, n.says, a, "channel", "rename", "ops", n.name)
			fails(t, 1, "invalid machine name ", a, "web", "--name", n.name, "--no-open")
			fails(t, 1, "invalid session handle ", a, "tail", "--channel", "ops", "--as", n.name)
			fails(t, 1, "invalid --as handle ", a, "bridge", "--as", n.name)
		})
	}

	// Inside the profile, but reads as alice: the server refuses it.
	fails(t, 1, `username "a1ice" is confusable with the existing user "alice"`, b, "register", "a1ice", "--server", url)
	fails(t, 1, `channel name "0ps" is confusable with an existing channel's`, a, "channel", "create", "0ps")
	ok(t, b, "register", "bob", "--server", url, "--machine", "wb")
}
