package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// binary is the conclave binary built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "conclave-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "conclave")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// cli runs the binary with args, with no CONCLAVE_* variables from the
// test's environment except those in env ("K=V").
func cli(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONCLAVE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run conclave %s: %v", strings.Join(args, " "), err)
	}
	return result{stdout.String(), stderr.String(), code}
}

// ok runs the binary and fails the test unless it exits 0 with an empty
// stderr.
func ok(t *testing.T, env []string, args ...string) string {
	t.Helper()
	r := cli(t, env, args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("conclave %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails runs the binary and checks that it exits with code and prints
// exactly one "error: …" line containing want (and, for usage errors, a
// hint).
func fails(t *testing.T, code int, want string, env []string, args ...string) result {
	t.Helper()
	r := cli(t, env, args...)
	if r.code != code {
		t.Fatalf("conclave %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	wantLines := 1
	if code == 2 {
		wantLines = 2
	}
	if len(lines) != wantLines || !strings.HasPrefix(lines[0], "error: ") || !strings.Contains(lines[0], want) {
		t.Fatalf("conclave %s: stderr %q, want %d line(s), the first `error: …%s…`", strings.Join(args, " "), r.stderr, wantLines, want)
	}
	if code == 2 && !strings.Contains(lines[1], "--help") {
		t.Errorf("usage error hint %q does not mention --help", lines[1])
	}
	return r
}

func writeConfig(t *testing.T, dir, body string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestHelpListsVerbs(t *testing.T) {
	out := ok(t, nil, "--help")
	for _, verb := range []string{"serve", "key", "register", "machine add", "machine list", "machine remove",
		"server list", "server remove", "channel create", "channel list", "join", "send", "whisper",
		"tail", "who", "status", "perm set", "perm show", "version", "--config-dir", "--json", "--verbose",
		"channel delete", "channel rename", "channel set-visibility", "acl add", "acl remove", "acl list",
		"invite create", "invite list", "invite revoke", "kick", "ban", "unban", "bans", "user list", "user remove"} {
		if !strings.Contains(out, verb) {
			t.Errorf("--help does not mention %q", verb)
		}
	}
}

// TestVersion: a plain go build (no -ldflags) reports the version the Go
// toolchain recorded in the binary, exactly as `go version -m` shows it.
func TestVersion(t *testing.T) {
	out, err := exec.Command("go", "version", "-m", binary).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	info, err := debug.ParseBuildInfo(strings.SplitN(string(out), "\n", 2)[1])
	if err != nil {
		t.Fatalf("parse go version -m output: %v\n%s", err, out)
	}
	want := versionFrom(info)
	for _, args := range [][]string{{"version"}, {"--version"}, {"-V"}} {
		if got := ok(t, nil, args...); got != "conclave "+want+"\n" {
			t.Errorf("conclave %v = %q, want %q", args, got, "conclave "+want+"\n")
		}
	}
	var v struct{ Version, Revision string }
	if err := json.Unmarshal([]byte(ok(t, nil, "version", "--json")), &v); err != nil || v.Version != want {
		t.Errorf("version --json = %+v, %v; want version %q", v, err, want)
	}
	if rev, _ := vcsStamp(info); v.Revision != rev {
		t.Errorf("version --json revision %q, want %q", v.Revision, rev)
	}
}

// TestVersionFromBuildInfo: what go install, go build in a checkout and a
// build without VCS information each report.
func TestVersionFromBuildInfo(t *testing.T) {
	stamp := func(v string, settings ...string) *debug.BuildInfo {
		info := &debug.BuildInfo{Main: debug.Module{Path: "github.com/conclave/conclave", Version: v}}
		for i := 0; i+1 < len(settings); i += 2 {
			info.Settings = append(info.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return info
	}
	rev := "7687ba0abcdef0123456789abcdef0123456789a"
	for _, c := range []struct {
		info *debug.BuildInfo
		want string
	}{
		{nil, "dev"},
		{stamp("(devel)"), "dev"},
		{stamp("v1.2.3"), "v1.2.3"},
		{stamp("v0.0.0-20261207194800-7687ba0abcde+dirty", "vcs.revision", rev, "vcs.modified", "true"), "v0.0.0-20261207194800-7687ba0abcde+dirty"},
		{stamp("(devel)", "vcs.revision", rev, "vcs.modified", "false"), "devel-7687ba0abcde"},
		{stamp("(devel)", "vcs.revision", rev, "vcs.modified", "true"), "devel-7687ba0abcde+dirty"},
	} {
		if got := versionFrom(c.info); got != c.want {
			t.Errorf("versionFrom(%v) = %q, want %q", c.info, got, c.want)
		}
	}
}

func TestKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "conf")
	first := ok(t, nil, "--config-dir", dir, "key")
	lines := strings.Split(strings.TrimSuffix(first, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "ssh-ed25519 AAAA") || !strings.Contains(lines[0], " conclave@") {
		t.Fatalf("key printed %q, want one authorized_keys line", first)
	}
	if fi, err := os.Stat(filepath.Join(dir, "id_ed25519")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("id_ed25519: %v, %v; want mode 0600", fi, err)
	}
	// Idempotent, also with the config dir from the environment.
	if again := ok(t, []string{"CONCLAVE_CONFIG_DIR=" + dir}, "key"); again != first {
		t.Errorf("second key = %q, want %q", again, first)
	}
	var doc struct {
		PublicKey   string `json:"public_key"`
		Fingerprint string `json:"fingerprint"`
	}
	if err := json.Unmarshal([]byte(ok(t, nil, "key", "--json", "--config-dir", dir)), &doc); err != nil ||
		doc.PublicKey != lines[0] || !strings.HasPrefix(doc.Fingerprint, "SHA256:") {
		t.Errorf("key --json = %+v, %v", doc, err)
	}
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("no ssh-keygen")
	}
	out, err := exec.Command(keygen, "-y", "-f", filepath.Join(dir, "id_ed25519")).Output()
	if err != nil {
		t.Fatalf("ssh-keygen -y: %v", err)
	}
	if got, want := strings.Fields(string(out))[:2], strings.Fields(lines[0])[:2]; got[0] != want[0] || got[1] != want[1] {
		t.Errorf("ssh-keygen -y = %q, conclave key = %q", got, want)
	}
	out, err = exec.Command(keygen, "-l", "-f", filepath.Join(dir, "id_ed25519")).Output()
	if err == nil && !strings.Contains(string(out), doc.Fingerprint) {
		t.Errorf("ssh-keygen -l = %q, want fingerprint %s", out, doc.Fingerprint)
	}
}

const twoServers = `default_permission = "notify"

[[servers]]
url = "wss://a.example"
username = "alice"
machine = "wa"
server_id = "id-a"

[[servers]]
url = "wss://b.example"
username = "alice"
machine = "wa"
server_id = "id-b"

[[overrides]]
server = "wss://a.example"
channel = "ops"
level = "act"

[[overrides]]
server = "wss://b.example"
whisper = true
level = "converse"

[[overrides]]
server = "wss://b.example"
channel = "dev"
level = "mute"
`

func TestServerListAndRemove(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, twoServers)
	cd := []string{"CONCLAVE_CONFIG_DIR=" + dir}
	if got, want := ok(t, cd, "server", "list"), "wss://a.example\talice/wa\nwss://b.example\talice/wa\n"; got != want {
		t.Errorf("server list = %q, want %q", got, want)
	}
	if got, want := ok(t, cd, "server", "remove", "wss://b.example"), "✓ forgot `wss://b.example` (2 permission override(s) removed)\n"; got != want {
		t.Errorf("server remove = %q, want %q", got, want)
	}
	if got, want := ok(t, cd, "server", "ls"), "wss://a.example\talice/wa\n"; got != want {
		t.Errorf("server list after remove = %q, want %q", got, want)
	}
	if got, want := ok(t, cd, "perm", "show"), "default: notify\nwss://a.example ops -> act\n"; got != want {
		t.Errorf("perm show after remove = %q, want %q", got, want)
	}
	fails(t, 1, "no registration for `wss://nope.example`", cd, "server", "remove", "wss://nope.example")
	// CONCLAVE_SERVER does not pick the server to forget; --server does.
	fails(t, 1, "which server", append(cd, "CONCLAVE_SERVER=wss://a.example"), "server", "remove")
	ok(t, cd, "server", "remove", "--server", "wss://a.example")
	if got := ok(t, cd, "server", "list"); got != noServers+"\n" {
		t.Errorf("server list with none = %q", got)
	}
	if got := ok(t, cd, "server", "list", "--json"); got != "[]\n" {
		t.Errorf("server list --json with none = %q", got)
	}
}

func TestPermSetAndShow(t *testing.T) {
	tests := []struct {
		name   string
		config string
		args   []string
		show   string // perm show afterwards
	}{
		{"default", twoServers, []string{"perm", "set", "converse"},
			"default: converse\nwss://a.example ops -> act\nwss://b.example <whisper> -> converse\nwss://b.example dev -> mute\n"},
		{"channel override replaced in place", twoServers, []string{"perm", "set", "notify", "--server", "wss://a.example", "--channel", "ops"},
			"default: notify\nwss://a.example ops -> notify\nwss://b.example <whisper> -> converse\nwss://b.example dev -> mute\n"},
		{"whisper override appended", twoServers, []string{"perm", "set", "act", "--server", "wss://a.example", "--whisper"},
			"default: notify\nwss://a.example ops -> act\nwss://b.example <whisper> -> converse\nwss://b.example dev -> mute\nwss://a.example <whisper> -> act\n"},
		{"channel without server means the only registration", oneServer, []string{"perm", "set", "converse", "--channel", "ops"},
			"default: notify\nws://127.0.0.1:1 ops -> converse\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeConfig(t, dir, tt.config)
			args := append([]string{"--config-dir", dir}, tt.args...)
			if out := ok(t, nil, args...); !strings.HasPrefix(out, "✓ permission updated") {
				t.Errorf("perm set printed %q", out)
			}
			if got := ok(t, nil, "--config-dir", dir, "perm", "show"); got != tt.show {
				t.Errorf("perm show = %q, want %q", got, tt.show)
			}
		})
	}
	t.Run("show filtered and json", func(t *testing.T) {
		dir := t.TempDir()
		writeConfig(t, dir, twoServers)
		if got, want := ok(t, nil, "--config-dir", dir, "perm", "show", "--server", "wss://a.example"), "default: notify\nwss://a.example ops -> act\n"; got != want {
			t.Errorf("perm show --server = %q, want %q", got, want)
		}
		want := `{"default":"notify","overrides":[{"server":"wss://a.example","channel":"ops","whisper":false,"level":"act"},` +
			`{"server":"wss://b.example","channel":null,"whisper":true,"level":"converse"},` +
			`{"server":"wss://b.example","channel":"dev","whisper":false,"level":"mute"}]}`
		if got := ok(t, nil, "--config-dir", dir, "perm", "show", "--json"); strings.TrimSpace(got) != want {
			t.Errorf("perm show --json = %s, want %s", got, want)
		}
	})
	errs := []struct {
		name, want string
		args       []string
	}{
		{"server without scope", "explicit scope", []string{"perm", "set", "act", "--server", "wss://a.example"}},
		{"both scopes", "mutually exclusive", []string{"perm", "set", "act", "--server", "wss://a.example", "--channel", "ops", "--whisper"}},
		{"bad level", "mute, notify, converse, act", []string{"perm", "set", "loud"}},
		{"channel with several servers", "several servers", []string{"perm", "set", "act", "--channel", "ops"}},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeConfig(t, dir, twoServers)
			fails(t, 1, tt.want, nil, append([]string{"--config-dir", dir}, tt.args...)...)
			if got, _ := os.ReadFile(filepath.Join(dir, "config.toml")); string(got) != twoServers {
				t.Errorf("config.toml changed by a failed perm set:\n%s", got)
			}
		})
	}
}

const oneServer = `[[servers]]
url = "ws://127.0.0.1:1"
username = "alice"
machine = "wa"
server_id = "id-x"
`

func TestUsageErrors(t *testing.T) {
	fails(t, 2, "unexpected argument", nil, "chanel", "list")
	fails(t, 2, "", nil)
	r := fails(t, 2, "--channel", nil, "send", "hi")
	if !strings.Contains(r.stderr, "conclave send --help") {
		t.Errorf("hint %q does not name the verb", r.stderr)
	}
	fails(t, 2, "must be one of", nil, "channel", "create", "x", "--visibility", "secret")
	fails(t, 2, "unknown flag", nil, "who", "--no-such-flag")
}

func TestUnreachableServer(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, oneServer)
	ok(t, nil, "--config-dir", dir, "key")
	cd := []string{"CONCLAVE_CONFIG_DIR=" + dir}
	for _, args := range [][]string{
		{"who"},
		{"channel", "list", "--server", "ws://127.0.0.1:1"},
		{"send", "--channel", "ops", "hello"},
		{"tail", "--channel", "ops"},
		{"machine", "list"},
	} {
		r := fails(t, 1, "ws://127.0.0.1:1", cd, args...)
		if r.stdout != "" {
			t.Errorf("conclave %v printed %q to stdout", args, r.stdout)
		}
	}
	// The key is checked before any network I/O.
	fails(t, 1, "invalid public key", cd, "machine", "add", "laptop", "--pubkey", "not a key")
	// --server must be registered.
	fails(t, 1, "not registered with ws://other", cd, "who", "--server", "ws://other")
	fails(t, 1, "not registered with ws://other", append(cd, "CONCLAVE_SERVER=ws://other"), "who")
}

func TestNoKey(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, oneServer)
	fails(t, 1, "conclave key", nil, "--config-dir", dir, "who")
}

func TestStatus(t *testing.T) {
	dir := t.TempDir()
	if got := ok(t, nil, "--config-dir", dir, "status"); got != noServers+"\n" {
		t.Errorf("status with no servers = %q", got)
	}
	writeConfig(t, dir, oneServer+"\n[[overrides]]\nserver = \"ws://127.0.0.1:1\"\nchannel = \"ops\"\nlevel = \"converse\"\n")
	ok(t, nil, "--config-dir", dir, "key")
	r := fails(t, 1, "1 server(s) unreachable", nil, "--config-dir", dir, "status")
	want := "ws://127.0.0.1:1\talice/wa\tunreachable: "
	if !strings.HasPrefix(r.stdout, want) || !strings.HasSuffix(r.stdout, "\n\ndefault: notify\nws://127.0.0.1:1 ops -> converse\n") {
		t.Errorf("status stdout = %q", r.stdout)
	}
}

func TestJSONFlagBeforeOrAfterVerb(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, twoServers)
	want := `[{"url":"wss://a.example","username":"alice","machine":"wa","server_id":"id-a"},` +
		`{"url":"wss://b.example","username":"alice","machine":"wa","server_id":"id-b"}]`
	for _, args := range [][]string{
		{"--json", "--config-dir", dir, "server", "list"},
		{"server", "--json", "list", "--config-dir", dir},
		{"server", "list", "--config-dir", dir, "--json"},
	} {
		if got := ok(t, nil, args...); strings.TrimSpace(got) != want {
			t.Errorf("conclave %v = %s, want %s", args, got, want)
		}
	}
}

func TestVerboseDoesNotBreakOutput(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, twoServers)
	if got := ok(t, nil, "-v", "--config-dir", dir, "server", "list"); !strings.HasPrefix(got, "wss://a.example") {
		t.Errorf("-v server list = %q", got)
	}
}

func TestBadConfig(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, "default_permission = \"loud\"\n")
	fails(t, 1, "config.toml", nil, "--config-dir", dir, "perm", "show")
}

// TestBinaryLeavesOutTestDependencies: modules only the tests use (the
// Prometheus linter) are not linked into conclave.
func TestBinaryLeavesOutTestDependencies(t *testing.T) {
	out, err := exec.Command("go", "version", "-m", binary).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	for _, mod := range []string{"github.com/prometheus/", "google.golang.org/protobuf"} {
		if strings.Contains(string(out), mod) {
			t.Errorf("the binary links %s:\n%s", mod, out)
		}
	}
	if !strings.Contains(string(out), "golang.org/x/time") {
		t.Errorf("the binary does not link golang.org/x/time (the rate limiter):\n%s", out)
	}
}
