package server

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/protocol"
)

// approverEnv is alice with three machines — laptop (where her agents
// run), phone and desk — and a person's session on each, plus bob.
type approverEnv struct {
	env                          *testEnv
	laptopKey, phoneKey, deskKey ed25519.PrivateKey
	laptop, phone, desk          *client
	bob                          *client
	bobKey                       ed25519.PrivateKey
}

func newApproverEnv(t *testing.T, cfg Config) *approverEnv {
	t.Helper()
	adminKey := newKey(t)
	cfg.Admins = append(cfg.Admins, Admin{User: "alice", Key: adminKey.Public().(ed25519.PublicKey)})
	e := &approverEnv{env: newTestEnv(t, cfg), laptopKey: adminKey, phoneKey: newKey(t), deskKey: newKey(t), bobKey: newKey(t)}
	c, f := e.env.handshake(e.laptopKey, "cli-1", &protocol.Frame{Username: "alice", Machine: "laptop"})
	if f.Type != protocol.TEstablished {
		t.Fatalf("register alice: %+v", f)
	}
	e.laptop = c
	e.laptop.ok(&protocol.Frame{Type: protocol.TMachineAdd, Machine: "phone", Pubkey: e.phoneKey.Public().(ed25519.PublicKey)})
	e.laptop.ok(&protocol.Frame{Type: protocol.TMachineAdd, Machine: "desk", Pubkey: e.deskKey.Public().(ed25519.PublicKey)})
	e.phone = e.env.login(e.phoneKey, "cli-2")
	e.desk = e.env.login(e.deskKey, "cli-3")
	c, f = e.env.handshake(e.bobKey, "cli-1", &protocol.Frame{Username: "bob", Machine: "laptop"})
	if f.Type != protocol.TEstablished {
		t.Fatalf("register bob: %+v", f)
	}
	e.bob = c
	return e
}

// bridge opens an agent's session (hello role "bridge").
func (e *approverEnv) bridge(key ed25519.PrivateKey, handle string) *client {
	e.env.t.Helper()
	c, f := e.env.handshakeRole(key, handle, protocol.RoleBridge, nil)
	if f.Type != protocol.TEstablished {
		e.env.t.Fatalf("bridge %s: %+v", handle, f)
	}
	return c
}

func addApprover(m string) *protocol.Frame {
	return &protocol.Frame{Type: protocol.TApproverAdd, Machine: m}
}

func removeApprover(m string) *protocol.Frame {
	return &protocol.Frame{Type: protocol.TApproverRemove, Machine: m}
}

func permReq(id string) *protocol.Frame {
	return &protocol.Frame{Type: protocol.TPermissionRequest, RequestID: id, ToolName: "Bash",
		Description: "Run the shell command: rm -rf build", InputPreview: `{"command":"rm -rf build"}`}
}

func verdict(id, behavior, target string) *protocol.Frame {
	return &protocol.Frame{Type: protocol.TPermissionVerdict, RequestID: id, Behavior: behavior, Target: target}
}

func approvers(t *testing.T, c *client) string {
	t.Helper()
	var out []string
	for _, m := range c.ok(&protocol.Frame{Type: protocol.TListMachines}).Machines {
		if m.Approver {
			out = append(out, m.Name)
		}
	}
	return strings.Join(out, ",")
}

func wantMessage(t *testing.T, r *protocol.Frame, sub string) {
	t.Helper()
	if !strings.Contains(r.Message, sub) {
		t.Fatalf("error %q, want it to contain %q", r.Message, sub)
	}
}

func TestApproverListRules(t *testing.T) {
	e := newApproverEnv(t, Config{})
	agent := e.bridge(e.laptopKey, "agent1")

	// A bridge never changes the list, not even to bootstrap it.
	wantMessage(t, agent.fail(addApprover("laptop"), protocol.CodeUnauthorized), "bridge session")
	e.laptop.fail(addApprover("nosuch"), protocol.CodeNotFound)
	// The first add comes from any machine of the user: the bootstrap.
	e.laptop.ok(addApprover("phone"))
	if got := approvers(t, e.laptop); got != "phone" {
		t.Fatalf("approvers = %q, want phone", got)
	}
	// From then on only an approver machine changes it.
	wantMessage(t, e.laptop.fail(addApprover("laptop"), protocol.CodeUnauthorized), "only a session on an approver machine (phone)")
	e.desk.fail(removeApprover("phone"), protocol.CodeUnauthorized)
	e.phone.ok(addApprover("desk"))
	e.phone.ok(addApprover("desk")) // already on it: accepted, nothing written
	e.desk.ok(removeApprover("desk"))
	e.phone.ok(removeApprover("desk")) // not on it: accepted, nothing written
	// Another user's list is separate: bob bootstraps his own.
	e.bob.ok(addApprover("laptop"))
	if got := approvers(t, e.bob); got != "laptop" {
		t.Fatalf("bob's approvers = %q", got)
	}

	// Removing the approver machine empties the list, and the bootstrap
	// does not come back: an agent with a shell on laptop can neither
	// remove phone and put laptop in its place, nor approve anything.
	e.laptop.ok(&protocol.Frame{Type: protocol.TMachineRemove, Machine: "phone"})
	if got := approvers(t, e.laptop); got != "" {
		t.Fatalf("approvers after machine remove = %q, want none", got)
	}
	wantMessage(t, e.laptop.fail(addApprover("laptop"), protocol.CodeUnauthorized), "has since been emptied")
	wantMessage(t, agent.fail(permReq("abcde"), protocol.CodeNotFound), "not relayed")

	// The audit trail shows every change, with its actor.
	var got []string
	for _, ev := range e.laptop.ok(&protocol.Frame{Type: protocol.TAudit}).Events {
		if strings.HasPrefix(ev.Type, "approver_") || ev.Type == "machine_removed" {
			got = append(got, ev.Type+" "+ev.Actor+" "+string(ev.Data))
		}
	}
	want := []string{
		`approver_added alice/laptop/cli-1 {"user":"alice","machine":"phone"}`,
		`approver_added alice/phone/cli-2 {"user":"alice","machine":"desk"}`,
		`approver_removed alice/desk/cli-3 {"user":"alice","machine":"desk"}`,
		`approver_added bob/laptop/cli-1 {"user":"bob","machine":"laptop"}`,
		`machine_removed alice/laptop/cli-1 {"user":"alice","machine":"phone"}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestApproverListSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	e := newApproverEnv(t, Config{DataDir: dir, SnapshotEvery: 1000})
	e.laptop.ok(addApprover("phone"))
	e.phone.ok(addApprover("desk"))
	e.desk.ok(removeApprover("desk"))
	e.bob.ok(addApprover("laptop"))
	e.bob.ok(removeApprover("laptop")) // bob's bootstrap is spent
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.env.srv.Shutdown(ctx); err != nil { // writes a snapshot
		t.Fatal(err)
	}
	for _, name := range []string{"from the snapshot", "by replay"} {
		t.Run(name, func(t *testing.T) {
			if name == "by replay" {
				if err := os.RemoveAll(filepath.Join(dir, "snapshots")); err != nil {
					t.Fatal(err)
				}
			}
			env := newTestEnv(t, Config{DataDir: dir})
			laptop := env.login(e.laptopKey, "cli-1")
			if got := approvers(t, laptop); got != "phone" {
				t.Fatalf("approvers after restart = %q, want phone", got)
			}
			laptop.fail(addApprover("laptop"), protocol.CodeUnauthorized)
			bob := env.login(e.bobKey, "cli-1")
			wantMessage(t, bob.fail(addApprover("laptop"), protocol.CodeUnauthorized), "has since been emptied")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			env.srv.Shutdown(ctx)
		})
	}
}

func TestPermissionRelay(t *testing.T) {
	e := newApproverEnv(t, Config{})
	agent := e.bridge(e.laptopKey, "agent1")
	wantMessage(t, agent.fail(permReq("abcde"), protocol.CodeNotFound), "has no approver machines")
	e.laptop.ok(addApprover("phone"))
	watcher := e.env.login(e.phoneKey, "tail-1")

	// Only a bridge session relays a request.
	wantMessage(t, e.laptop.fail(permReq("abcde"), protocol.CodeUnauthorized), "only a bridge session")
	if r := agent.ok(permReq("abcde")); r.Type != protocol.TAck || r.Detail != "abcde" {
		t.Fatalf("request reply = %+v", r)
	}
	d := watcher.nextOfType(protocol.TPermissionRequest)
	if d.From != "alice/laptop/agent1" || d.RequestID != "abcde" || d.ToolName != "Bash" || d.InputPreview != `{"command":"rm -rf build"}` || d.TsMs == 0 || d.ID != "" {
		t.Fatalf("delivery = %+v", d)
	}
	// A person's session on a machine that is not an approver sees
	// nothing: its next frame is the reply to its own ping.
	if r := e.laptop.req(&protocol.Frame{Type: protocol.TPing}); r.Type != protocol.TPong {
		t.Fatalf("laptop got %+v before its pong", r)
	}

	// Nobody but a person on an approver machine lists or answers.
	wantMessage(t, e.laptop.fail(&protocol.Frame{Type: protocol.TPermissionList}, protocol.CodeUnauthorized), "not an approver machine")
	wantMessage(t, e.laptop.fail(verdict("abcde", "allow", ""), protocol.CodeUnauthorized), "not an approver machine")
	wantMessage(t, agent.fail(verdict("abcde", "allow", ""), protocol.CodeUnauthorized), "bridge session never answers")
	phoneAgent := e.bridge(e.phoneKey, "agent9")
	wantMessage(t, phoneAgent.fail(verdict("abcde", "allow", ""), protocol.CodeUnauthorized), "bridge session never answers")
	phoneAgent.fail(&protocol.Frame{Type: protocol.TPermissionList}, protocol.CodeUnauthorized)
	// Another user, even with approvers of their own, finds nothing.
	e.bob.ok(addApprover("laptop"))
	wantMessage(t, e.bob.fail(verdict("abcde", "allow", ""), protocol.CodeNotFound), "no pending permission request")
	if l := e.bob.ok(&protocol.Frame{Type: protocol.TPermissionList}); len(l.Permissions) != 0 {
		t.Fatalf("bob sees %+v", l.Permissions)
	}

	l := e.phone.ok(&protocol.Frame{Type: protocol.TPermissionList})
	if len(l.Permissions) != 1 || l.Permissions[0].From != "alice/laptop/agent1" || l.Permissions[0].RequestID != "abcde" ||
		l.Permissions[0].Description != "Run the shell command: rm -rf build" {
		t.Fatalf("list = %+v", l.Permissions)
	}
	e.phone.fail(verdict("zzzzz", "allow", ""), protocol.CodeNotFound)
	// Ids match in any case; the ack names the session that asked.
	if r := e.phone.ok(verdict("ABCDE", "allow", "")); r.Detail != "alice/laptop/agent1" {
		t.Fatalf("verdict ack = %+v", r)
	}
	v := agent.nextOfType(protocol.TPermissionVerdict)
	if v.RequestID != "abcde" || v.Behavior != "allow" || v.From != "alice/phone/cli-2" {
		t.Fatalf("verdict delivered = %+v", v)
	}
	res := watcher.nextOfType(protocol.TPermissionResolved)
	if res.RequestID != "abcde" || res.Behavior != "allow" || res.Reason != "allow by alice/phone/cli-2" {
		t.Fatalf("resolved = %+v", res)
	}
	// The first verdict wins.
	wantMessage(t, watcher.fail(verdict("abcde", "deny", ""), protocol.CodeConflict), "already answered (allow by alice/phone/cli-2)")
	if l := e.phone.ok(&protocol.Frame{Type: protocol.TPermissionList}); len(l.Permissions) != 0 {
		t.Fatalf("answered request still listed: %+v", l.Permissions)
	}

	// The same id pending in two sessions: the verdict names one.
	agent2 := e.bridge(e.laptopKey, "agent2")
	agent.ok(permReq("fghij"))
	agent2.ok(permReq("fghij"))
	wantMessage(t, e.phone.fail(verdict("fghij", "deny", ""), protocol.CodeConflict),
		"pending in several sessions (alice/laptop/agent1, alice/laptop/agent2)")
	e.phone.ok(verdict("fghij", "deny", "agent2"))
	if v := agent2.nextOfType(protocol.TPermissionVerdict); v.RequestID != "fghij" || v.Behavior != "deny" {
		t.Fatalf("agent2 got %+v", v)
	}
	e.phone.ok(verdict("fghij", "allow", "alice/laptop/agent1"))
	if v := agent.nextOfType(protocol.TPermissionVerdict); v.RequestID != "fghij" || v.Behavior != "allow" {
		t.Fatalf("agent1 got %+v", v)
	}
}

func TestPermissionRequestEndsWithItsSession(t *testing.T) {
	e := newApproverEnv(t, Config{})
	e.laptop.ok(addApprover("phone"))
	agent := e.bridge(e.laptopKey, "agent1")
	agent.ok(permReq("abcde"))
	e.phone.nextOfType(protocol.TPermissionRequest)
	agent.conn.CloseNow()
	res := e.phone.nextOfType(protocol.TPermissionResolved)
	if res.RequestID != "abcde" || res.From != "alice/laptop/agent1" || res.Reason != "the requesting session ended" {
		t.Fatalf("resolved = %+v", res)
	}
	wantMessage(t, e.phone.fail(verdict("abcde", "allow", ""), protocol.CodeNotFound), "no pending permission request")
}

func TestPermissionRequestResentAfterReconnect(t *testing.T) {
	e := newApproverEnv(t, Config{})
	e.laptop.ok(addApprover("phone"))
	asked := time.Now().Add(-time.Minute).UnixMilli()
	old := e.bridge(e.laptopKey, "agent1")
	r := permReq("abcde")
	r.TsMs = asked
	old.ok(r)
	if d := e.phone.nextOfType(protocol.TPermissionRequest); d.TsMs != asked {
		t.Fatalf("ts_ms = %d, want the time Claude Code asked, %d", d.TsMs, asked)
	}
	// The bridge reconnects (the new session supersedes the old) and
	// re-sends what Claude Code still waits on.
	agent := e.bridge(e.laptopKey, "agent1")
	old.waitClosed()
	r = permReq("abcde")
	r.TsMs = asked
	agent.ok(r)
	l := e.phone.ok(&protocol.Frame{Type: protocol.TPermissionList})
	if len(l.Permissions) != 1 || l.Permissions[0].TsMs != asked {
		t.Fatalf("list after the re-send = %+v", l.Permissions)
	}
	e.phone.ok(verdict("abcde", "deny", ""))
	if v := agent.nextOfType(protocol.TPermissionVerdict); v.Behavior != "deny" {
		t.Fatalf("verdict = %+v", v)
	}
	// A re-send of an answered request (its verdict lost with a
	// connection) gets the verdict again.
	r.ID = "again"
	agent.sendFrame(r)
	if v := agent.nextOfType(protocol.TPermissionVerdict); v.RequestID != "abcde" || v.Behavior != "deny" {
		t.Fatalf("verdict again = %+v", v)
	}
	if a := agent.next(); a.Type != protocol.TAck || a.ID != "again" {
		t.Fatalf("reply to the re-send = %+v", a)
	}
}

// TestPermissionRequestWithdrawn: the session that relayed a request
// withdraws it when its runtime stops waiting; the approvers see it
// resolved, and a verdict after that is refused like any for a request no
// longer pending.
func TestPermissionRequestWithdrawn(t *testing.T) {
	e := newApproverEnv(t, Config{})
	e.laptop.ok(addApprover("phone"))
	agent := e.bridge(e.laptopKey, "agent1")
	other := e.bridge(e.laptopKey, "agent2")
	withdraw := func(id string) *protocol.Frame {
		return &protocol.Frame{Type: protocol.TPermissionWithdraw, RequestID: id}
	}
	agent.ok(permReq("abcde"))
	e.phone.nextOfType(protocol.TPermissionRequest)

	// Only the session that asked, and only a bridge session.
	wantMessage(t, e.laptop.fail(withdraw("abcde"), protocol.CodeUnauthorized), "only the bridge session")
	wantMessage(t, other.fail(withdraw("abcde"), protocol.CodeNotFound), `no pending permission request "abcde" of this session`)
	agent.fail(&protocol.Frame{Type: protocol.TPermissionWithdraw}, protocol.CodeMalformed)

	if r := agent.ok(withdraw("ABCDE")); r.Type != protocol.TAck || r.Detail != "abcde" {
		t.Fatalf("withdraw reply = %+v", r)
	}
	res := e.phone.nextOfType(protocol.TPermissionResolved)
	if res.RequestID != "abcde" || res.From != "alice/laptop/agent1" || res.Behavior != "" || res.Reason != withdrawnReason {
		t.Fatalf("resolved = %+v", res)
	}
	if l := e.phone.ok(&protocol.Frame{Type: protocol.TPermissionList}); len(l.Permissions) != 0 {
		t.Fatalf("a withdrawn request is still listed: %+v", l.Permissions)
	}
	wantMessage(t, e.phone.fail(verdict("abcde", "allow", ""), protocol.CodeNotFound), "no pending permission request")
	agent.fail(withdraw("abcde"), protocol.CodeNotFound)

	// An answered request stays answered.
	agent.ok(permReq("fghij"))
	e.phone.ok(verdict("fghij", "deny", ""))
	agent.nextOfType(protocol.TPermissionVerdict)
	wantMessage(t, agent.fail(withdraw("fghij"), protocol.CodeConflict), "already answered (deny by alice/phone/cli-2)")
}

func TestPermissionRequestExpires(t *testing.T) {
	e := newApproverEnv(t, Config{PermissionTTL: 200 * time.Millisecond, ReapInterval: 20 * time.Millisecond})
	e.laptop.ok(addApprover("phone"))
	agent := e.bridge(e.laptopKey, "agent1")
	// Asked longer ago than the TTL (a re-send after a long outage).
	stale := permReq("old01")
	stale.TsMs = time.Now().Add(-time.Second).UnixMilli()
	wantMessage(t, agent.fail(stale, protocol.CodeNotFound), "has expired")

	agent.ok(permReq("abcde"))
	e.phone.nextOfType(protocol.TPermissionRequest)
	res := e.phone.nextOfType(protocol.TPermissionResolved)
	if res.RequestID != "abcde" || res.Reason != "expired" {
		t.Fatalf("resolved = %+v", res)
	}
	wantMessage(t, e.phone.fail(verdict("abcde", "allow", ""), protocol.CodeNotFound), "no pending permission request")
}

func TestPermissionFramesValidated(t *testing.T) {
	e := newApproverEnv(t, Config{})
	e.laptop.ok(addApprover("phone"))
	agent := e.bridge(e.laptopKey, "agent1")
	for _, f := range []*protocol.Frame{
		permReq(""), permReq("has space"), permReq(strings.Repeat("a", 65)),
		{Type: protocol.TPermissionRequest, RequestID: "abcde"}, // no tool_name
		{Type: protocol.TPermissionRequest, RequestID: "abcde", ToolName: "Bash", Description: strings.Repeat("x", protocol.MaxDescriptionLen+1)},
	} {
		agent.fail(f, protocol.CodeMalformed)
	}
	e.phone.fail(verdict("abcde", "maybe", ""), protocol.CodeMalformed)
	e.phone.fail(verdict("abcde", "allow", "a/b/c/d"), protocol.CodeMalformed)
	// An unknown hello role is refused at the handshake.
	c := e.env.dialRaw()
	c.sendFrame(&protocol.Frame{Type: protocol.THello, Version: 1, Session: "x", Role: "robot"})
	if f := c.next(); f.Type != protocol.TError || f.Code != protocol.CodeMalformed || !strings.Contains(f.Message, "unknown role") {
		t.Fatalf("unknown role: %+v", f)
	}
}
