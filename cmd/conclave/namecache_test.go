package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/identity"
)

func TestChannelCache(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	update := func(server string, ch channelChange, at time.Time) {
		t.Helper()
		if err := updateChannelCache(dir, server, ch, at); err != nil {
			t.Fatal(err)
		}
	}
	check := func(server string, at time.Time, want ...string) {
		t.Helper()
		if got := cachedChannels(dir, server, at); !slices.Equal(got, want) {
			t.Errorf("cachedChannels(%q) = %q, want %q", server, got, want)
		}
	}
	check("", now) // no file: nothing
	update("ws://a", channelChange{replace: true, add: []string{"ops", "dev", "a/b"}}, now)
	update("ws://b", channelChange{add: []string{"design"}}, now)
	check("ws://a", now, "dev", "ops") // an invalid name is not kept
	check("", now, "design", "dev", "ops")
	update("ws://a", channelChange{remove: "dev", add: []string{"development"}}, now)
	check("ws://a", now, "development", "ops")
	update("ws://a", channelChange{replace: true, add: []string{"ops"}}, now)
	check("ws://a", now, "ops")
	// A list older than the bound is neither offered nor kept.
	check("ws://b", now.Add(channelCacheMaxAge+time.Minute))
	update("ws://a", channelChange{add: []string{"x"}}, now.Add(channelCacheMaxAge+time.Minute))
	if c := loadChannelCache(dir); c.Servers["ws://b"] != nil {
		t.Errorf("a stale server's list was kept: %+v", c.Servers["ws://b"])
	}
	// At most channelCacheMax names a server, the newest kept.
	var many []string
	for i := range channelCacheMax + 5 {
		many = append(many, "c"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+strings.Repeat("y", i/26))
	}
	update("ws://a", channelChange{replace: true, add: many}, now)
	if got := cachedChannels(dir, "ws://a", now); len(got) != channelCacheMax {
		t.Errorf("%d names kept, want %d", len(got), channelCacheMax)
	}
	// A damaged file is an empty cache, and is replaced on the next update.
	os.WriteFile(filepath.Join(dir, channelCacheFile), []byte("{not json"), 0o600)
	check("", now)
	update("ws://a", channelChange{add: []string{"ops"}}, now)
	check("", now, "ops")
}

// nameCompDir is a config dir with two registered servers and a channel
// cache: ws://a.example:4390 has ops, dev and "build farm" (not offered:
// it has a space), wss://b.example has design, and a list older than the
// age bound names old.
func nameCompDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cfg := identity.NewConfig()
	cfg.Servers = []identity.Server{
		{URL: "ws://a.example:4390", Username: "alice", Machine: "m"},
		{URL: "wss://b.example", Username: "alice", Machine: "m"},
	}
	if err := cfg.Save(dir); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c := &channelCache{Servers: map[string]*cachedServer{
		"ws://stale.example":  {UpdatedMs: now.Add(-channelCacheMaxAge - time.Hour).UnixMilli(), Channels: []string{"old"}},
		"ws://a.example:4390": {UpdatedMs: now.UnixMilli(), Channels: []string{"ops", "dev", "build farm"}},
		"wss://b.example":     {UpdatedMs: now.UnixMilli(), Channels: []string{"design"}},
	}}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, channelCacheFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// nameCompCases: the lines of TestCompletionsNames, and what each shell
// offers (bash leaves out what precedes the last ':' of the word, as it
// replaces only what follows it).
var nameCompCases = []struct {
	line       string
	want       []string
	bash, fish []string // if different from want
}{
	{line: "conclave send --channel ", want: []string{"design", "dev", "ops"}},
	{line: "conclave send --server ws://a.example:4390 --channel ", want: []string{"dev", "ops"}},
	{line: "conclave send --server=wss://b.example --channel ", want: []string{"design"}},
	{line: "conclave send --server ws://nowhere --channel ", want: nil},
	{line: "conclave tail --channel o", want: []string{"ops"}},
	{line: "conclave join ", want: []string{"design", "dev", "ops"}},
	{line: "conclave who d", want: []string{"design", "dev"}},
	{line: "conclave channel delete ", want: []string{"design", "dev", "ops"}},
	{line: "conclave kick alice --channel ", want: []string{"design", "dev", "ops"}},
	{line: "conclave send --server ", want: []string{"ws://a.example:4390", "wss://b.example"}},
	{line: "conclave send --server ws", want: []string{"ws://a.example:4390", "wss://b.example"}},
	{line: "conclave send --server ws:", want: []string{"ws://a.example:4390"}, bash: []string{"//a.example:4390"}},
	{line: "conclave server remove ", want: []string{"ws://a.example:4390", "wss://b.example"}},
	{line: "conclave --config-dir EMPTY send --channel ", want: nil},
	{line: "conclave --config-dir=EMPTY join ", want: nil},
	{line: "conclave --config-dir MISSING send --server ", want: nil},
}

// TestCompletionsNames runs the real completion in bash, zsh and fish with
// the conclave binary on PATH: server names come from config.toml and
// channel names from the cache, of the --config-dir and --server typed on
// the line; a missing config dir offers nothing and prints nothing.
func TestCompletionsNames(t *testing.T) {
	if filepath.Base(binary) != "conclave" {
		t.Fatalf("the test binary is %s, want one named conclave", binary)
	}
	dir := nameCompDir(t)
	empty, missing := t.TempDir(), filepath.Join(t.TempDir(), "missing")
	var lines []string
	for _, c := range nameCompCases {
		l := strings.ReplaceAll(c.line, "EMPTY", empty)
		lines = append(lines, strings.ReplaceAll(l, "MISSING", missing))
	}
	env := []string{"CONCLAVE_CONFIG_DIR=" + dir, "PATH=" + filepath.Dir(binary) + string(os.PathListSeparator) + os.Getenv("PATH")}
	shells := []struct {
		name   string
		argv   []string
		driver string
	}{
		{"bash", []string{"bash", "--norc", "--noprofile"}, bashDriver},
		{"zsh", []string{"zsh", "-f"}, zshDriver},
		{"fish", []string{"fish", "--no-config"}, fishDriver},
	}
	for _, sh := range shells {
		t.Run(sh.name, func(t *testing.T) {
			if _, err := exec.LookPath(sh.argv[0]); err != nil {
				t.Skipf("no %s (apt-get install %s)", sh.name, sh.name)
			}
			script := writeScript(t, sh.name)
			driver := filepath.Join(t.TempDir(), "driver")
			if err := os.WriteFile(driver, []byte(sh.driver), 0o644); err != nil {
				t.Fatal(err)
			}
			linesFile := filepath.Join(t.TempDir(), "lines")
			if err := os.WriteFile(linesFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(sh.argv[0], append(slices.Clone(sh.argv[1:]), driver, script, linesFile)...)
			cmd.Dir = t.TempDir()
			cmd.Env = append(os.Environ(), env...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s: %v\n%s%s", sh.name, err, out, stderr.String())
			}
			if stderr.Len() > 0 {
				t.Errorf("%s printed into the shell: %q", sh.name, stderr.String())
			}
			got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
			if sh.name != "fish" {
				got = got[1:] // the registration line
			}
			if len(got) != len(nameCompCases) {
				t.Fatalf("%d lines for %d cases:\n%s", len(got), len(nameCompCases), out)
			}
			for i, c := range nameCompCases {
				want := c.want
				if sh.name == "bash" && c.bash != nil {
					want = c.bash
				}
				var cands []string
				if got[i] != "" {
					cands = strings.Split(got[i], "|")
				}
				slices.Sort(cands)
				if !slices.Equal(cands, want) {
					t.Errorf("%q offers %q, want %q", lines[i], cands, want)
				}
			}
		})
	}
}

// TestChannelCacheFromCommands: the commands that learn channel names from
// a server keep them for completion, and `complete-names` (what the
// scripts run) prints them, without the network.
func TestChannelCacheFromCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and a bridge")
	}
	t.Parallel()
	w := newWorld(t, nil, "alice", "bob")
	alice := []string{"CONCLAVE_CONFIG_DIR=" + w.dirs["alice"]}
	bob := []string{"CONCLAVE_CONFIG_DIR=" + w.dirs["bob"]}
	names := func(env []string) string {
		t.Helper()
		return strings.TrimSpace(ok(t, env, "complete-names", "channels"))
	}
	cacheFile := filepath.Join(w.dirs["alice"], channelCacheFile)
	ok(t, alice, "channel", "create", "ops")
	ok(t, alice, "channel", "create", "dev")
	if got := names(alice); got != "dev\nops" {
		t.Errorf("after channel create: %q", got)
	}
	ok(t, alice, "channel", "rename", "dev", "development")
	if got := names(alice); got != "development\nops" {
		t.Errorf("after channel rename: %q", got)
	}
	ok(t, alice, "channel", "delete", "development")
	if got := names(alice); got != "ops" {
		t.Errorf("after channel delete: %q", got)
	}
	ok(t, alice, "channel", "create", "design")
	os.Remove(cacheFile)
	ok(t, alice, "channel", "list")
	if got := names(alice); got != "design\nops" {
		t.Errorf("after channel list: %q", got)
	}
	if got := strings.TrimSpace(ok(t, alice, "complete-names", "channels", "--server", w.url)); got != "design\nops" {
		t.Errorf("complete-names channels --server: %q", got)
	}
	if got := strings.TrimSpace(ok(t, alice, "complete-names", "servers")); got != w.url {
		t.Errorf("complete-names servers: %q, want %s", got, w.url)
	}
	ok(t, bob, "join", "ops")
	if got := names(bob); got != "ops" {
		t.Errorf("bob after join: %q", got)
	}

	// The bridge's list_channels and join_channel.
	os.Remove(cacheFile)
	c := startBridge(t, w.dirs["alice"], "", "--as", "cache")
	c.ok("join_channel", map[string]any{"channel": "ops"})
	if got := names(alice); got != "ops" {
		t.Errorf("after the bridge's join_channel: %q", got)
	}
	c.ok("list_channels", nil)
	if got := names(alice); got != "design\nops" {
		t.Errorf("after the bridge's list_channels: %q", got)
	}
	// Nothing but names, and nothing at all from a config dir that does
	// not exist.
	r := cli(t, []string{"CONCLAVE_CONFIG_DIR=" + filepath.Join(t.TempDir(), "none")}, "complete-names", "channels")
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Errorf("complete-names without a config dir: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}
