package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeBlock returns the lines of the n-th ```sh block after heading in
// README.md.
func readmeBlock(t *testing.T, heading string, n int) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README.md has no %q", heading)
	}
	s = s[i:]
	for k := 0; ; k++ {
		j := strings.Index(s, "```sh\n")
		if j < 0 {
			t.Fatalf("README.md has no sh block %d after %q", n, heading)
		}
		s = s[j+len("```sh\n"):]
		end := strings.Index(s, "```")
		if k == n {
			return strings.Split(strings.TrimSuffix(s[:end], "\n"), "\n")
		}
		s = s[end+3:]
	}
}

// uncomment drops a line's trailing "# …" comment (outside quotes, as the
// README's lines have them).
func uncomment(line string) string {
	if i := strings.Index(line, "  #"); i >= 0 {
		line = line[:i]
	}
	return strings.TrimSpace(line)
}

// shell runs script with bash in dir, with env added.
func shell(t *testing.T, dir string, env []string, script string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONCLAVE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// TestReadmeRunsAsWritten runs the README's first command (the server)
// and its quick start line by line as a user types them, from a directory
// holding the built ./conclave. The only change: the server's port is a
// free one (CONCLAVE_BIND, and the same address in the quick start's URLs).
func TestReadmeRunsAsWritten(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	two := readmeBlock(t, "## Two commands", 0)
	if len(two) != 2 || uncomment(two[1]) != "go test ./..." {
		t.Fatalf("the README's two commands are %q", two)
	}
	serve := uncomment(two[0])
	if serve != "go run ./cmd/conclave serve --data-dir ./conclave-data" {
		t.Fatalf("the README's first command is %q", serve)
	}
	dir := t.TempDir()
	if err := os.Link(binary, filepath.Join(dir, "conclave")); err != nil {
		b, err := os.ReadFile(binary)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "conclave"), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	addr := freeAddr(t)
	// go run builds what the test already built: run that binary with the
	// command's arguments.
	// The data dir is relative to where the user stands: the test stands in
	// dir, so the server's ./conclave-data lands there, never in the source
	// tree (where a second run would find alice already registered).
	args := strings.Fields(strings.TrimPrefix(serve, "go run ./cmd/conclave "))
	for i, a := range args {
		if strings.HasPrefix(a, "./") {
			args[i] = filepath.Join(dir, a)
		}
	}
	srv := start(t, []string{"CONCLAVE_BIND=" + addr, "CONCLAVE_LOG_FORMAT=json"}, true, args...)
	srv.expect(`"msg":"conclave server listening","addr":"` + regexp.QuoteMeta(addr))
	go func() {
		for range srv.lines {
		}
	}()

	var script []string
	for _, l := range readmeBlock(t, "## Quick start", 0) {
		if strings.HasPrefix(l, "go build -o conclave ./cmd/conclave") {
			continue // built by the test
		}
		script = append(script, strings.ReplaceAll(l, "127.0.0.1:4390", addr))
	}
	out, errOut, err := shell(t, dir, nil, "set -eu\n"+strings.Join(script, "\n"))
	if err != nil {
		t.Fatalf("the quick start failed: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	for _, want := range []string{
		`(?m)^\[ops\] alice/laptop/cli-\d+: hello$`,
		`(?m)^\[ops\] alice/laptop/cli-\d+: from a pipe$`,
		`(?m)^\[whisper\] alice/laptop/cli-\d+: psst$`,
		`(?m)^✓ registered alice/laptop/cli-\d+$`,
		`(?m)^✓ registered alice/phone/cli-\d+$`,
		`(?m)^\[server\] .*bob/desk/bt`,
		`(?m)^\[\{"name":"ops","visibility":"public","member":true\}\]$`,
		`(?m)^ws://` + regexp.QuoteMeta(addr) + `\talice/laptop$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("the quick start's output has no %s:\n%s", want, out)
		}
	}
	if strings.Contains(errOut, "error:") {
		t.Errorf("the quick start printed errors:\n%s", errOut)
	}
}

// TestReadmeInstallLines runs the README's install, skill and completion
// lines that need neither the network, Claude Code nor Nix, with a fresh
// HOME and GOBIN.
func TestReadmeInstallLines(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary again")
	}
	home, gobin := t.TempDir(), t.TempDir()
	env := []string{"HOME=" + home, "GOBIN=" + gobin, "PATH=" + gobin + ":" + os.Getenv("PATH")}
	// The Go caches stay where they are (a fresh HOME would move them).
	for _, v := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		out, err := exec.Command("go", "env", v).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", v, err)
		}
		env = append(env, v+"="+strings.TrimSpace(string(out)))
	}
	install := readmeBlock(t, "## Install", 0)
	if uncomment(install[0]) != "go install ./cmd/conclave" {
		t.Fatalf("the README's install line is %q", install[0])
	}
	if _, e, err := shell(t, "../..", env, uncomment(install[0])); err != nil {
		t.Fatalf("%s: %v\n%s", install[0], err, e)
	}
	if out, e, err := shell(t, home, env, "conclave version"); err != nil || !strings.HasPrefix(out, "conclave ") {
		t.Fatalf("the installed conclave: %q %q %v", out, e, err)
	}
	var skill string
	for _, l := range readmeBlock(t, "## Install", 1) {
		if strings.HasPrefix(l, "conclave skill install") {
			skill = uncomment(l)
		}
	}
	if skill == "" {
		t.Fatal("the README has no conclave skill install line")
	}
	var completions []string
	for n := 2; len(completions) == 0 || !strings.HasPrefix(completions[0], "source <(conclave completions bash)"); n++ {
		completions = readmeBlock(t, "## Install", n)
	}
	if len(completions) != 3 {
		t.Fatalf("the README's completion lines: %q", completions)
	}
	script := skill + "\n"
	for _, l := range completions {
		script += uncomment(l) + "\n"
	}
	if _, e, err := shell(t, home, env, "set -eu\n"+script+"complete -p conclave"); err != nil {
		t.Fatalf("the README's skill and completion lines: %v\n%s\n%s", err, script, e)
	}
	for _, f := range []string{".claude/skills/conclave/SKILL.md", ".zfunc/_conclave", ".config/fish/completions/conclave.fish"} {
		if st, err := os.Stat(filepath.Join(home, f)); err != nil || st.Size() == 0 {
			t.Errorf("~/%s after the README's lines: %v", f, err)
		}
	}
}
