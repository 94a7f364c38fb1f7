package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/protocol"
)

// TestHookWithoutBridge: a hook with no bridge of its session above it
// hands nothing over ({}), says why on stderr and lets the turn go on.
func TestHookWithoutBridge(t *testing.T) {
	dir := t.TempDir()
	for _, rt := range []string{"codex", "gemini"} {
		cmd := exec.Command(binary, "--config-dir", dir, "hook", rt)
		cmd.Stdin = strings.NewReader(`{"hook_event_name":"UserPromptSubmit","session_id":"s1"}`)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || strings.TrimSpace(string(out)) != "{}" || !strings.Contains(stderr.String(), "no conclave bridge runs under this "+rt+" session") {
			t.Errorf("%s: err %v, stdout %q, stderr %q", rt, err, out, stderr.String())
		}
	}
	st, err := os.Stat(filepath.Join(dir, "run"))
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("the socket directory: %v, mode %v", err, st.Mode())
	}
	fails(t, 1, "not JSON with a hook_event_name", nil, "--config-dir", dir, "hook", "codex")
}

// TestHookTwoSessionsInOneDirectory runs two "runtimes" (shells, each
// the parent of a bridge and of the hooks it runs, as Codex CLI and
// Gemini CLI are) in the same directory: each hook reaches its own
// session's bridge, found by the process it runs under, never by the
// directory, and hands over only that session's whisper. The socket is
// the user's alone.
func TestHookTwoSessionsInOneDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and two bridges")
	}
	w := newWorld(t, nil, "alice", "bob")
	bob := w.dial("bob", "bt")
	cwd := t.TempDir()
	// runtime: start a bridge as a child fed by a FIFO, then ask the hook
	// (as the runtime would at each turn boundary) until it hands
	// something over, at most 200 times.
	script := `set -u
mkfifo "$D/in-$H"
"$BIN" --config-dir "$CFG" bridge --delivery hooks --as "$H" <"$D/in-$H" >/dev/null 2>"$D/bridge-$H.log" &
exec 3>"$D/in-$H"
i=0
while [ $i -lt 200 ]; do
  out=$(echo '{"hook_event_name":"UserPromptSubmit","session_id":"s-'"$H"'"}' | "$BIN" --config-dir "$CFG" hook codex 2>/dev/null)
  case "$out" in *additionalContext*) break;; esac
  sleep 0.1; i=$((i+1))
done
printf '%s\n' "$out"
exec 3>&-
wait`
	d := t.TempDir()
	run := func(handle string) (*exec.Cmd, *strings.Builder) {
		cmd := exec.Command("bash", "-c", script)
		cmd.Dir = cwd
		cmd.Env = append(os.Environ(), "D="+d, "H="+handle, "BIN="+binary, "CFG="+w.dirs["alice"])
		var out strings.Builder
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd, &out
	}
	one, out1 := run("one")
	two, out2 := run("two")
	deadline := time.Now().Add(30 * time.Second)
	for {
		who := ok(t, []string{"CONCLAVE_CONFIG_DIR=" + w.dirs["bob"]}, "who")
		if strings.Contains(who, "alice/alice-m/one") && strings.Contains(who, "alice/alice-m/two") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the bridges did not connect: %s", who)
		}
		time.Sleep(100 * time.Millisecond)
	}
	entries, err := os.ReadDir(filepath.Join(w.dirs["alice"], "run"))
	if err != nil || len(entries) != 2 {
		t.Fatalf("sockets %v: %v", entries, err)
	}
	for _, e := range entries {
		info, _ := e.Info()
		if info.Mode()&os.ModeSocket == 0 || info.Mode().Perm() != 0o600 {
			t.Errorf("socket %s mode %v", e.Name(), info.Mode())
		}
	}
	mustRequest(t, bob, &protocol.Frame{Type: protocol.TWhisper, Target: "alice/alice-m/one", Body: strp("for one only")})
	mustRequest(t, bob, &protocol.Frame{Type: protocol.TWhisper, Target: "alice/alice-m/two", Body: strp("for two only")})
	for _, c := range []*exec.Cmd{one, two} {
		if err := c.Wait(); err != nil {
			t.Errorf("runtime: %v", err)
		}
	}
	for name, out := range map[string]*strings.Builder{"one": out1, "two": out2} {
		other := map[string]string{"one": "two", "two": "one"}[name]
		got := out.String()
		if !strings.Contains(got, `"hookEventName":"UserPromptSubmit"`) || !strings.Contains(got, "for "+name+" only") ||
			strings.Contains(got, "for "+other+" only") || !strings.Contains(got, `\u003cchannel source=\"conclave\"`) {
			t.Errorf("session %s's hook printed %s", name, got)
		}
	}
}
