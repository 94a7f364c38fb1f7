package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestAuditOverTheWire runs `conclave audit --server` against a real
// server: the admin sees every event, a channel admin only theirs, with
// tokens fingerprinted.
func TestAuditOverTheWire(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	addr, data := freeAddr(t), t.TempDir()
	url := "ws://" + addr
	adminDir := t.TempDir()
	pub := strings.TrimSpace(ok(t, nil, "--config-dir", adminDir, "key"))
	serveDir(t, addr, data, "--admin", "alice="+pub)
	bob := t.TempDir()
	ok(t, nil, "--config-dir", adminDir, "register", "alice", "--server", url)
	ok(t, nil, "--config-dir", bob, "register", "bob", "--server", url)
	ok(t, nil, "--config-dir", bob, "channel", "create", "bobs", "--visibility", "private")
	inv := ok(t, nil, "--config-dir", bob, "--json", "invite", "create", "--channel", "bobs")
	var tok struct{ Token string }
	if err := json.Unmarshal([]byte(inv), &tok); err != nil || tok.Token == "" {
		t.Fatalf("invite create --json = %q", inv)
	}
	ok(t, nil, "--config-dir", adminDir, "channel", "create", "ops")

	all := ok(t, nil, "--config-dir", adminDir, "audit", "--server", url)
	for _, want := range []string{"user_registered", "channel_created", "invite_created", "channel ops", "channel bobs"} {
		if !strings.Contains(all, want) {
			t.Errorf("admin's audit lacks %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, tok.Token) {
		t.Error("a token in full without --show-tokens")
	}
	mine := ok(t, nil, "--config-dir", bob, "--json", "audit", "--server", url)
	lines := strings.Split(strings.TrimSpace(mine), "\n")
	if len(lines) != 2 || strings.Contains(mine, "channel ops") {
		t.Fatalf("bob's audit = %s", mine)
	}
	ok(t, nil, "--config-dir", bob, "audit", "--server", url, "--type", "invite_created")
	fails(t, 1, "--data-dir", nil, "audit", "verify", "--server", url)
	fails(t, 1, "needs --data-dir", nil, "audit")
	// The data dir gives the same events, shown the same way: a token
	// fingerprinted by the server is not shortened again.
	local := ok(t, nil, "audit", "--data-dir", data)
	if local != all {
		t.Errorf("audit --data-dir and audit --server differ:\n%s\n---\n%s", local, all)
	}
	if fp := "invite " + tok.Token[:6] + "… on bobs"; !strings.Contains(all, fp) {
		t.Errorf("audit --server lacks %q:\n%s", fp, all)
	}
}
