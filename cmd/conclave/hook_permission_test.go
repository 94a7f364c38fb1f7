package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/protocol"
)

// hookRuntime plays a runtime that runs command hooks (as Codex CLI
// does): a shell that starts the bridge as its child and then, for each
// line the test writes (a hook's --permission-wait), runs `conclave hook
// codex` with a PermissionRequest input and prints its output as one
// line. The hook finds the bridge through the shell, its parent.
type hookRuntime struct {
	t   *testing.T
	in  io.WriteCloser
	out *bufio.Scanner
}

func startHookRuntime(t *testing.T, cfg string) *hookRuntime {
	t.Helper()
	d := t.TempDir()
	script := `set -u
mkfifo "$D/in"
"$BIN" --config-dir "$CFG" bridge --delivery hooks --as agent <"$D/in" >/dev/null 2>"$D/bridge.log" &
exec 3>"$D/in"
while read -r wait; do
  out=$(printf '%s\n' '{"hook_event_name":"PermissionRequest","session_id":"s1","tool_name":"Bash","tool_input":{"command":"touch built","description":"may I build?"}}' |
    "$BIN" --config-dir "$CFG" hook codex --permission-wait "$wait" 2>"$D/hook.err")
  printf '%s\t%s\n' "$out" "$(tr '\n' ' ' <"$D/hook.err")"
done
exec 3>&-
wait`
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(os.Environ(), "D="+d, "BIN="+binary, "CFG="+cfg)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(d, "bridge.log"))
			t.Logf("bridge stderr:\n%s", log)
		}
	})
	return &hookRuntime{t: t, in: in, out: bufio.NewScanner(stdout)}
}

// ask runs the hook with wait; result reads what it printed.
func (r *hookRuntime) ask(wait string) {
	r.t.Helper()
	if _, err := fmt.Fprintln(r.in, wait); err != nil {
		r.t.Fatal(err)
	}
}

// result returns the hook's output JSON and its stderr.
func (r *hookRuntime) result() (map[string]any, string) {
	r.t.Helper()
	if !r.out.Scan() {
		r.t.Fatalf("the runtime ended: %v", r.out.Err())
	}
	out, stderr, _ := strings.Cut(r.out.Text(), "\t")
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		r.t.Fatalf("the hook printed %q (stderr %q), not JSON", out, stderr)
	}
	return v, stderr
}

func decision(v map[string]any) (behavior, message string) {
	out, _ := v["hookSpecificOutput"].(map[string]any)
	d, _ := out["decision"].(map[string]any)
	behavior, _ = d["behavior"].(string)
	message, _ = d["message"].(string)
	return behavior, message
}

// TestHookCodexPermission: Codex's PermissionRequest hook, through the
// real bridge and server, goes to the person on alice's approver machine
// (her phone): the phone's `conclave approve` makes the hook answer
// allow, `deny` deny (with who denied, for the model); an answer from
// her laptop, not an approver machine, is refused and the hook still
// waits. With no approver machine, or nobody answering within the wait,
// the hook decides nothing and says why: Codex then asks in its own way.
func TestHookCodexPermission(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and a bridge")
	}
	t.Parallel()
	w := newWorld(t, nil, "alice")
	laptop := []string{"CONCLAVE_CONFIG_DIR=" + w.dirs["alice"]}
	phoneDir := filepath.Join(t.TempDir(), "phone")
	phone := []string{"CONCLAVE_CONFIG_DIR=" + phoneDir}
	ok(t, laptop, "machine", "add", "phone", "--pubkey", strings.TrimSpace(ok(t, phone, "key")))
	ok(t, phone, "register", "--existing", "--server", w.url)
	rt := startHookRuntime(t, w.dirs["alice"])

	// No approver machine yet: nothing is relayed, at once.
	deadline := time.Now().Add(30 * time.Second)
	for {
		rt.ask("1m")
		v, stderr := rt.result()
		if msg, _ := v["systemMessage"].(string); strings.Contains(msg, "alice has no approver machines") {
			if b, _ := decision(v); b != "" || !strings.Contains(stderr, "left to Codex CLI's own prompt") {
				t.Errorf("refused: %v, stderr %q", v, stderr)
			}
			break
		}
		// The bridge was not connected yet: the hook had no answer.
		if time.Now().After(deadline) {
			t.Fatalf("the hook never said the request was not relayed: %v, %q", v, stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}

	ok(t, laptop, "machine", "approver", "add", "phone")
	watcher := phoneConn(t, phoneDir, w.url)
	for _, behavior := range []string{"allow", "deny"} {
		rt.ask("2m")
		req := nextEvent(t, watcher, protocol.TPermissionRequest)
		if req.From != "alice/alice-m/agent" || req.ToolName != "Bash" || req.Description != "Run the shell command: touch built (the agent says: may I build?)" ||
			req.InputPreview != `{"command":"touch built","description":"may I build?"}` {
			t.Fatalf("the phone got %+v", req)
		}
		// The laptop, where the agent runs, may not answer.
		fails(t, 1, "not an approver machine", laptop, "approve", req.RequestID)
		verb := map[string]string{"allow": "approve", "deny": "deny"}[behavior]
		ok(t, phone, verb, req.RequestID)
		v, _ := rt.result()
		got, msg := decision(v)
		if got != behavior || (behavior == "deny" && !strings.Contains(msg, "denied by alice/phone/cli-")) {
			t.Errorf("%s: the hook printed %v", behavior, v)
		}
	}

	// Nobody answers within the wait: no decision, and the bridge
	// withdraws the request, so that the approvers stop seeing it and a
	// late verdict is refused instead of going nowhere.
	rt.ask("1s")
	req := nextEvent(t, watcher, protocol.TPermissionRequest)
	v, stderr := rt.result()
	if b, _ := decision(v); b != "" || !strings.Contains(stderr, "no approver answered request "+req.RequestID+" in time") {
		t.Errorf("unanswered: %v, stderr %q", v, stderr)
	}
	if res := nextEvent(t, watcher, protocol.TPermissionResolved); res.RequestID != req.RequestID ||
		res.Reason != "withdrawn: the requesting session no longer waits for an answer" {
		t.Fatalf("after the hook gave up the phone got %+v", res)
	}
	fails(t, 1, "no pending permission request "+strconv.Quote(req.RequestID), phone, "approve", req.RequestID)
	if out := ok(t, phone, "approvals"); out != "no pending permission requests\n" {
		t.Errorf("approvals after the withdrawal = %q", out)
	}
}
