package main

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conclave/conclave/control"
	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

const (
	methodPermissionRequest = "notifications/claude/channel/permission_request"
	methodPermission        = "notifications/claude/channel/permission"
)

// permissionAsk is what Claude Code sends when a tool needs approval.
func permissionAsk(id string) map[string]any {
	return map[string]any{"request_id": id, "tool_name": "Bash", "description": "Run the shell command: rm -rf build",
		"input_preview": `{"command":"rm -rf build"}`}
}

// verdictNote matches the verdict the bridge hands Claude Code.
func verdictNote(id, behavior string) func(*rpcNote) bool {
	return func(n *rpcNote) bool {
		return n.Method == methodPermission && n.Params["request_id"] == id && n.Params["behavior"] == behavior
	}
}

// mentions matches any notification whose content or params mention s.
func mentions(s string) func(*rpcNote) bool {
	return func(n *rpcNote) bool {
		if strings.Contains(n.Content, s) {
			return true
		}
		for _, v := range n.Params {
			if str, ok := v.(string); ok && strings.Contains(str, s) {
				return true
			}
		}
		return false
	}
}

// waitStderr waits until the bridge's stderr contains s.
func (c *mcpClient) waitStderr(s string) {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(c.stderrText(), s) {
		if time.Now().After(deadline) {
			c.t.Fatalf("bridge stderr has no %q within 15s:\n%s", s, c.stderrText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBridgePermissionRelay runs the real bridge over stdio: Claude Code's
// permission requests go to the person on alice's approver machine (her
// phone), never to the model, and the verdict comes back as
// notifications/claude/channel/permission — also for a request re-sent
// after the server restarted.
func TestBridgePermissionRelay(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers and a bridge")
	}
	t.Parallel()
	addr, data := freeAddr(t), t.TempDir()
	url := "ws://" + addr
	srv := serveDir(t, addr, data, "--rate-limit", "0")
	w := &world{t: t, url: url, dirs: map[string]string{}}
	laptop := []string{"CONCLAVE_CONFIG_DIR=" + w.register("alice")}
	phoneDir := filepath.Join(t.TempDir(), "phone")
	phone := []string{"CONCLAVE_CONFIG_DIR=" + phoneDir}
	ok(t, laptop, "machine", "add", "phone", "--pubkey", strings.TrimSpace(ok(t, phone, "key")))
	ok(t, phone, "register", "--existing", "--server", url)

	c := startBridge(t, w.dirs["alice"], "", "--as", "main")
	// No tool answers a permission request.
	for _, tool := range c.tools() {
		if strings.Contains(tool, "permission") {
			t.Errorf("the bridge offers %s", tool)
		}
	}

	// With no approver machine nothing is relayed: the bridge says so on
	// stderr, and the model sees nothing.
	c.notify(methodPermissionRequest, permissionAsk("aaaaa"))
	c.waitStderr("permission request not relayed")
	if !strings.Contains(c.stderrText(), "alice has no approver machines") {
		t.Errorf("stderr does not say why:\n%s", c.stderrText())
	}

	ok(t, laptop, "machine", "approver", "add", "phone")
	watcher := phoneConn(t, phoneDir, url)
	c.notify(methodPermissionRequest, permissionAsk("bcdef"))
	d := nextEvent(t, watcher, protocol.TPermissionRequest)
	if d.RequestID != "bcdef" || d.From != "alice/alice-m/main" || d.ToolName != "Bash" || d.InputPreview != `{"command":"rm -rf build"}` {
		t.Fatalf("the phone got %+v", d)
	}
	if out := ok(t, phone, "approve", "bcdef"); out != "✓ allowed bcdef (alice/alice-m/main)\n" {
		t.Errorf("approve printed %q", out)
	}
	c.wait("the allow verdict", 10*time.Second, verdictNote("bcdef", "allow"))

	// After the server restarts (it keeps requests in memory only), the
	// bridge re-sends what Claude Code still waits on.
	c.notify(methodPermissionRequest, permissionAsk("cdefg"))
	nextEvent(t, watcher, protocol.TPermissionRequest)
	srv.cmd.Process.Signal(syscall.SIGKILL)
	<-srv.done
	serveDir(t, addr, data, "--rate-limit", "0")
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(cli(t, phone, "approvals").stdout, "cdefg") {
		if time.Now().After(deadline) {
			t.Fatalf("cdefg was not re-sent after the restart; bridge stderr:\n%s", c.stderrText())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out := ok(t, phone, "deny", "cdefg"); out != "✓ denied cdefg (alice/alice-m/main)\n" {
		t.Errorf("deny printed %q", out)
	}
	c.wait("the deny verdict", 10*time.Second, verdictNote("cdefg", "deny"))

	// Nothing of any request reached the model: no notification but the
	// two verdicts mentions an id, and none went out as a channel message.
	for _, id := range []string{"aaaaa", "bcdef", "cdefg"} {
		if n := c.poll(0, mentions(id)); n != nil {
			t.Errorf("the model was shown %s: %s %v %q", id, n.Method, n.Params, n.Content)
		}
	}
}

// phoneConn is a person's session (no bridge role) of the config dir's
// user, whose events the test reads.
func phoneConn(t *testing.T, dir, url string) *control.Conn {
	t.Helper()
	key, _, err := identity.LoadKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := control.Dial(context.Background(), &control.Options{URL: url, Key: key, Session: "watch"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
