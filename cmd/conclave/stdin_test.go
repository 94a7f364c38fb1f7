package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cliStdin runs the binary like cli, with stdin from in.
func cliStdin(t *testing.T, env []string, in *os.File, args ...string) result {
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
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("conclave %s did not finish within 60 s", strings.Join(args, " "))
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{stdout.String(), stderr.String(), code}
}

// fileWith returns a file holding s, open for reading, as a shell's
// `… <file` or the read end of a finished pipe.
func fileWith(t *testing.T, s string) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestMessageFromStdin: `-` as the message reads stdin to its end, in send
// and whisper (echo hi | conclave send --channel ops -); any other text is
// sent as given, and stdin is then never read, even when it never closes;
// empty and whitespace-only messages are refused.
func TestMessageFromStdin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	url, _, _ := startServer(t)
	a := []string{"CONCLAVE_CONFIG_DIR=" + t.TempDir()}
	b := []string{"CONCLAVE_CONFIG_DIR=" + t.TempDir()}
	ok(t, a, "register", "alice", "--server", url, "--machine", "wa")
	ok(t, b, "register", "bob", "--server", url, "--machine", "wb")
	ok(t, a, "channel", "create", "ops")
	tail := start(t, b, false, "tail", "--channel", "ops", "--as", "bt")
	tail.expectStderr(`^tailing #ops`)

	if r := cliStdin(t, a, fileWith(t, "hi\n"), "send", "--channel", "ops", "-"); r.code != 0 || r.stdout != "✓ sent to ops\n" {
		t.Fatalf("echo hi | send -: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if l := tail.next(); !strings.HasSuffix(l, ": hi") {
		t.Errorf("tail got %q, want hi (the trailing newline dropped)", l)
	}
	if r := cliStdin(t, a, fileWith(t, "two\nlines\n"), "whisper", "bob/wb/bt", "-"); r.code != 0 {
		t.Fatalf("whisper -: exit %d, %q", r.code, r.stderr)
	}
	if l := tail.next(); !strings.HasPrefix(l, "[whisper] alice/wa/") || !strings.HasSuffix(l, ": two") {
		t.Errorf("tail got %q, want the whisper's first line", l)
	}
	if l := tail.next(); l != "lines" {
		t.Errorf("tail got %q, want the whisper's second line", l)
	}

	// A stdin that never closes (an agent's shell) is not read for a
	// message given as an argument.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	defer pr.Close()
	if r := cliStdin(t, a, pr, "send", "--channel", "ops", "as given"); r.code != 0 {
		t.Fatalf("send with an open stdin: exit %d, %q", r.code, r.stderr)
	}
	if l := tail.next(); !strings.HasSuffix(l, ": as given") {
		t.Errorf("tail got %q", l)
	}

	for _, c := range []struct {
		in, arg, want string
	}{
		{"", "-", "error: empty message on stdin: nothing to send\n"},
		{" \n\t\n", "-", "error: empty message on stdin: nothing to send\n"},
		{"", "", "error: empty message: nothing to send (give the text, or - to read it from stdin)\n"},
		{"", "  ", "error: empty message: nothing to send (give the text, or - to read it from stdin)\n"},
	} {
		for _, args := range [][]string{{"send", "--channel", "ops", c.arg}, {"whisper", "bob/wb/bt", c.arg}} {
			if r := cliStdin(t, a, fileWith(t, c.in), args...); r.code != 1 || r.stderr != c.want {
				t.Errorf("%q on stdin, conclave %q: exit %d, stderr %q; want 1 and %q", c.in, args, r.code, r.stderr, c.want)
			}
		}
	}
	ok(t, a, "send", "--channel", "ops", "last")
	if l := tail.next(); !strings.HasSuffix(l, ": last") {
		t.Errorf("after the refusals tail got %q, want last (nothing else was posted)", l)
	}
}
