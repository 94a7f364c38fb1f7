package main

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conclave/conclave/control"
	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

// agentConn is a bridge-role session (what `conclave bridge` opens) of the
// user of config dir dir.
func agentConn(t *testing.T, dir, handle string) *control.Conn {
	t.Helper()
	cfg, err := identity.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := cfg.SelectServer("")
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := identity.LoadKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := control.Dial(context.Background(), &control.Options{URL: srv.URL, Key: key, Session: handle,
		PinnedServerID: srv.ServerID, Role: protocol.RoleBridge})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// nextEvent returns the next unprompted frame of type typ on conn.
func nextEvent(t *testing.T, conn *control.Conn, typ string) *protocol.Frame {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case f, ok := <-conn.Events():
			if !ok {
				t.Fatalf("connection ended waiting for %s: %v", typ, conn.Err())
			}
			if f.Type == typ {
				return f
			}
		case <-timeout:
			t.Fatalf("no %s within 15s", typ)
		}
	}
}

// aliceLaptopAndPhone registers alice on the server at url from her
// laptop and enrolls her phone: the laptop's config dir, and the
// environments that select each machine's.
func aliceLaptopAndPhone(t *testing.T, url string) (lDir string, l, p []string) {
	t.Helper()
	tmp := t.TempDir()
	lDir = filepath.Join(tmp, "L")
	l = []string{"CONCLAVE_CONFIG_DIR=" + lDir}
	p = []string{"CONCLAVE_CONFIG_DIR=" + filepath.Join(tmp, "P")}
	ok(t, l, "register", "alice", "--server", url, "--machine", "laptop")
	ok(t, l, "machine", "add", "phone", "--pubkey", strings.TrimSpace(ok(t, p, "key")))
	ok(t, p, "register", "alice", "--existing", "--server", url, "--machine", "phone")
	return lDir, l, p
}

// TestApprovalsFromTheCLI: alice's agents run on her laptop; her phone is
// her approver machine. Only the phone's CLI lists and answers, and tail
// there shows the requests.
func TestApprovalsFromTheCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	url, _, _ := startServer(t)
	lDir, l, p := aliceLaptopAndPhone(t, url)
	ok(t, l, "channel", "create", "ops")

	fails(t, 1, "alice has no approver machines", p, "approvals")
	agent := agentConn(t, lDir, "agent1")
	_, err := agent.Request(context.Background(), &protocol.Frame{Type: protocol.TPermissionRequest, RequestID: "abcde", ToolName: "Bash"})
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeNotFound || !strings.Contains(pe.Message, "not relayed") {
		t.Fatalf("request with no approvers: %v", err)
	}

	if out := ok(t, l, "machine", "approver", "add", "phone"); out != "✓ phone is an approver machine\n" {
		t.Errorf("approver add printed %q", out)
	}
	fails(t, 1, "only a session on an approver machine (phone)", l, "machine", "approver", "add", "laptop")
	if out := ok(t, p, "machine", "list"); !regexp.MustCompile(`(?m)^laptop\tSHA256:\S+\t\S+\n^phone\tSHA256:\S+\t\S+\tapprover$`).MatchString(out) {
		t.Errorf("machine list = %q", out)
	}
	var ms []struct {
		Name     string `json:"name"`
		Approver bool   `json:"approver"`
	}
	if err := json.Unmarshal([]byte(ok(t, p, "--json", "machine", "list")), &ms); err != nil || len(ms) != 2 || ms[0].Approver || !ms[1].Approver {
		t.Errorf("machine list --json = %+v, %v", ms, err)
	}

	if out := ok(t, p, "approvals"); out != "no pending permission requests\n" {
		t.Errorf("approvals with none = %q", out)
	}
	watch := start(t, p, false, "approvals", "--watch")
	watch.expect(`^no pending permission requests$`)
	watch.waitStderr("watching permission requests of alice")
	tail := start(t, p, false, "tail", "--channel", "ops")
	tail.waitStderr("tailing #ops as alice/phone/cli-")

	if _, err := agent.Request(context.Background(), &protocol.Frame{Type: protocol.TPermissionRequest, RequestID: "abcde",
		ToolName: "Bash", Description: "Run the shell command: rm -rf build", InputPreview: `{"command":"rm -rf build"}`}); err != nil {
		t.Fatal(err)
	}
	watch.expect(`^abcde  alice/laptop/agent1  Bash  asked \d+s ago$`)
	watch.expect(`^  Run the shell command: rm -rf build$`)
	watch.expect(`^  \{"command":"rm -rf build"\}$`)
	tail.expect(`^\[approval\] abcde  alice/laptop/agent1  Bash  asked \d+s ago$`)

	// The laptop (where the agents run) may neither see nor answer.
	fails(t, 1, "machine laptop is not an approver machine of alice (approvers: phone)", l, "approvals")
	fails(t, 1, "not an approver machine", l, "approve", "abcde")

	var list []permissionLine
	if err := json.Unmarshal([]byte(ok(t, p, "approvals", "--json")), &list); err != nil || len(list) != 1 ||
		list[0].RequestID != "abcde" || list[0].From != "alice/laptop/agent1" || list[0].ToolName != "Bash" || list[0].AgeMs < 0 {
		t.Fatalf("approvals --json = %+v, %v", list, err)
	}
	fails(t, 1, `no pending permission request "zzzzz"`, p, "approve", "zzzzz")
	if out := ok(t, p, "approve", "abcde"); out != "✓ allowed abcde (alice/laptop/agent1)\n" {
		t.Errorf("approve printed %q", out)
	}
	if v := nextEvent(t, agent, protocol.TPermissionVerdict); v.RequestID != "abcde" || v.Behavior != "allow" || !strings.HasPrefix(v.From, "alice/phone/cli-") {
		t.Fatalf("verdict at the bridge = %+v", v)
	}
	watch.expect(`^abcde  alice/laptop/agent1  allow by alice/phone/cli-\d+$`)
	fails(t, 1, "already answered (allow by alice/phone/cli-", p, "deny", "abcde")

	// The same id pending in two sessions: --session picks one.
	agent2 := agentConn(t, lDir, "agent2")
	for _, c := range []*control.Conn{agent, agent2} {
		if _, err := c.Request(context.Background(), &protocol.Frame{Type: protocol.TPermissionRequest, RequestID: "fghij", ToolName: "Write"}); err != nil {
			t.Fatal(err)
		}
	}
	fails(t, 1, "pending in several sessions (alice/laptop/agent1, alice/laptop/agent2): name one with --session", p, "deny", "fghij")
	out := ok(t, p, "--json", "deny", "fghij", "--session", "agent2")
	if strings.TrimSpace(out) != `{"request_id":"fghij","behavior":"deny","session":"alice/laptop/agent2"}` {
		t.Errorf("deny --json = %s", out)
	}
	if v := nextEvent(t, agent2, protocol.TPermissionVerdict); v.RequestID != "fghij" || v.Behavior != "deny" {
		t.Fatalf("verdict at agent2 = %+v", v)
	}
	watch.interrupt()
	tail.interrupt()
}

// TestApprovalsWatchAcrossKilledServer: approvals --watch outlives a
// server killed with SIGKILL. While it is down the watch says so and keeps
// trying; once back it says which request it had shown is gone (pending
// requests live in memory), shows one asked while it was away, and goes on
// with live ones.
func TestApprovalsWatchAcrossKilledServer(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts servers")
	}
	addr, data := freeAddr(t), t.TempDir()
	url := "ws://" + addr
	srv := serveDir(t, addr, data)
	lDir, l, p := aliceLaptopAndPhone(t, url)
	ok(t, l, "machine", "approver", "add", "phone")
	ask := func(conn *control.Conn, id string) {
		t.Helper()
		if _, err := conn.Request(context.Background(), &protocol.Frame{Type: protocol.TPermissionRequest, RequestID: id, ToolName: "Bash"}); err != nil {
			t.Fatal(err)
		}
	}
	ask(agentConn(t, lDir, "agent1"), "aaaaa")

	watch := start(t, p, false, "--json", "approvals", "--watch")
	line := func(want permissionLine) {
		t.Helper()
		var got permissionLine
		if err := json.Unmarshal([]byte(watch.next()), &got); err != nil {
			t.Fatal(err)
		}
		got.TsMs, got.AgeMs = 0, 0
		if got != want {
			t.Fatalf("watch printed %+v, want %+v", got, want)
		}
	}
	line(permissionLine{Kind: protocol.TPermissionRequest, From: "alice/laptop/agent1", RequestID: "aaaaa", ToolName: "Bash"})
	watch.waitStderr("watching permission requests of alice")

	srv.stop(syscall.SIGKILL)
	watch.waitStderr("lost")
	watch.waitStderr("reconnecting")
	srv = serveDir(t, addr, data)
	agent := agentConn(t, lDir, "agent1")
	ask(agent, "bbbbb")
	watch.waitStderr("✓ reconnected to " + url)
	line(permissionLine{Kind: protocol.TPermissionResolved, From: "alice/laptop/agent1", RequestID: "aaaaa",
		Reason: "no longer pending (answered or expired while disconnected)"})
	line(permissionLine{Kind: protocol.TPermissionRequest, From: "alice/laptop/agent1", RequestID: "bbbbb", ToolName: "Bash"})
	ask(agent, "ccccc")
	line(permissionLine{Kind: protocol.TPermissionRequest, From: "alice/laptop/agent1", RequestID: "ccccc", ToolName: "Bash"})
	if rest, code := watch.interrupt(); len(rest) != 0 || code != 0 {
		t.Fatalf("watch after Ctrl-C: exit %d, more lines %q", code, rest)
	}
	srv.stop(syscall.SIGTERM)
}

// TestApproverListRestoredByAdmin: once alice's only approver machine is
// revoked, her list cannot be set up again from her own machines (an agent
// with a shell there could otherwise name itself); a server admin restores
// one machine, and only while her list is empty.
func TestApproverListRestoredByAdmin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	url, _, _ := startServer(t, "--admin", "root", "--rate-limit", "0")
	tmp := t.TempDir()
	env := func(name string) []string { return []string{"CONCLAVE_CONFIG_DIR=" + filepath.Join(tmp, name)} }
	root, bob, l, p := env("root"), env("bob"), env("laptop"), env("phone")
	ok(t, root, "register", "root", "--server", url)
	ok(t, bob, "register", "bob", "--server", url)
	ok(t, l, "register", "alice", "--server", url, "--machine", "laptop")
	ok(t, l, "machine", "add", "phone", "--pubkey", strings.TrimSpace(ok(t, p, "key")))
	ok(t, l, "machine", "approver", "add", "phone")
	ok(t, l, "machine", "remove", "phone")

	fails(t, 1, "a server admin can restore one machine with `conclave machine approver add NAME --user alice`", l, "machine", "approver", "add", "laptop")
	fails(t, 1, "only a server admin may change another user's approver list", bob, "machine", "approver", "add", "laptop", "--user", "alice")
	fails(t, 1, `no machine named "phone" of user alice`, root, "machine", "approver", "add", "phone", "--user", "alice")
	fails(t, 1, `no user named "carol"`, root, "machine", "approver", "add", "laptop", "--user", "carol")
	if out := ok(t, root, "machine", "approver", "add", "laptop", "--user", "alice"); out != "✓ laptop is an approver machine of alice\n" {
		t.Errorf("admin restore printed %q", out)
	}
	fails(t, 1, "alice has approver machines (laptop)", root, "machine", "approver", "add", "laptop", "--user", "alice")
	if out := ok(t, l, "machine", "list"); !strings.Contains(out, "\tapprover") {
		t.Errorf("machine list after the restore = %q", out)
	}
	// From the restored machine alice runs her list again.
	if out := ok(t, l, "approvals"); out != "no pending permission requests\n" {
		t.Errorf("approvals on the restored machine = %q", out)
	}
}
