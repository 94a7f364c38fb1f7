package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestErrorsNameTheNextStep: the refusals a new user meets first say what
// to do next.
func TestErrorsNameTheNextStep(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	url, _, _ := startServer(t)
	hostPort := strings.TrimPrefix(url, "ws://")
	tmp := t.TempDir()
	a := []string{"CONCLAVE_CONFIG_DIR=" + filepath.Join(tmp, "A")}
	b := []string{"CONCLAVE_CONFIG_DIR=" + filepath.Join(tmp, "B")}
	l := []string{"CONCLAVE_CONFIG_DIR=" + filepath.Join(tmp, "L")}

	// A URL without a scheme: what to type instead.
	fails(t, 1, "server URL \""+hostPort+"\" has no scheme: use ws://"+hostPort+" (plain) or wss://"+hostPort+" (TLS)",
		a, "register", "alice", "--server", hostPort)

	// http:// is stored as ws://, so the ws:// spelling finds it later.
	ok(t, a, "register", "alice", "--server", "http://"+hostPort+"/", "--machine", "wa")
	if out := ok(t, a, "server", "list"); out != url+"\talice/wa\n" {
		t.Errorf("server list after registering http://%s = %q, want the ws:// spelling", hostPort, out)
	}
	ok(t, a, "who", "--server", url)
	ok(t, a, "who", "--server", "HTTP://"+strings.ToUpper(hostPort[:1])+hostPort[1:])

	// The reference's flag spellings: the argument they became.
	fails(t, 2, "unknown flag --username: the username is an argument, not a flag: conclave register alice --server URL",
		b, "register", "--username", "alice", "--server", url)
	fails(t, 2, "unknown flag --name: the machine name is an argument, not a flag: conclave machine add laptop",
		a, "machine", "add", "--name", "laptop", "--pubkey", "x")

	// A revoked machine: status says so, and how to enroll it again.
	lapKey := strings.TrimSpace(ok(t, l, "key"))
	ok(t, a, "machine", "add", "laptop", "--pubkey", lapKey)
	ok(t, l, "register", "--existing", "--server", url)
	ok(t, l, "status")
	ok(t, a, "machine", "remove", "laptop")
	r := fails(t, 1, "1 server(s) unreachable or refusing this machine's key", l, "status")
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(url) + `\talice/laptop\tkey revoked: .*not enrolled there.*conclave machine add laptop --pubkey .*conclave register --existing --server ` +
		regexp.QuoteMeta(url) + `\n`).MatchString(r.stdout) {
		t.Errorf("status of a revoked machine:\n%s", r.stdout)
	}
	fails(t, 1, "conclave register --existing --server "+url, l, "who")

	// A spent invite: the one join refusal, naming the invite.
	ok(t, b, "register", "bob", "--server", url, "--machine", "wb")
	ok(t, a, "channel", "create", "secret", "--visibility", "private")
	tok := strings.TrimSpace(strings.TrimPrefix(strings.SplitN(ok(t, a, "invite", "create", "--channel", "secret", "--uses", "1"), "\n", 2)[0], "invite token: "))
	ok(t, b, "join", "secret", "--token", tok)
	c := []string{"CONCLAVE_CONFIG_DIR=" + filepath.Join(tmp, "C")}
	ok(t, c, "register", "carol", "--server", url, "--machine", "wc")
	want := "join rejected: not_found: no such channel \"secret\", or the invite is invalid, used up or expired"
	fails(t, 1, want, c, "join", "secret", "--token", tok)
	fails(t, 1, strings.Replace(want, "secret", "nosuch", 1), c, "join", "nosuch", "--token", tok)

	// A config.toml written before URLs were normalized (an http://
	// spelling) still matches the ws:// one.
	cfgPath := filepath.Join(tmp, "A", "config.toml")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(cfg), url, "http://"+hostPort, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	ok(t, a, "who", "--server", url)
}
