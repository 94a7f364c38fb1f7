package bridge

import (
	"context"
	"crypto/ed25519"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

// newTestBridge builds a bridge over cfg without serving it.
func newTestBridge(t *testing.T, cfg *identity.Config, mod func(*Options)) *Bridge {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	o := &Options{Key: key, Config: cfg, DefaultHandle: "razel"}
	if mod != nil {
		mod(o)
	}
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func oneServer(urls ...string) *identity.Config {
	cfg := identity.NewConfig()
	for _, u := range urls {
		cfg.Servers = append(cfg.Servers, identity.Server{URL: u, Username: "aaron", Machine: "workstation"})
	}
	return cfg
}

// queued returns and clears what the outbox holds.
func queued(b *Bridge) []note {
	b.out.mu.Lock()
	defer b.out.mu.Unlock()
	q := b.out.queue
	b.out.queue = nil
	return q
}

func contents(notes []note) []string {
	var out []string
	for _, n := range notes {
		if c, ok := n.params["content"].(string); ok {
			out = append(out, c)
		} else {
			out = append(out, n.method)
		}
	}
	return out
}

func TestNewRefusals(t *testing.T) {
	tests := []struct {
		name string
		cfg  *identity.Config
		mod  func(*Options)
		want string
	}{
		{"no servers", identity.NewConfig(), nil, "no servers registered"},
		{"unknown --server", oneServer("ws://a"), func(o *Options) { o.Servers = []string{"ws://b"} }, "not registered"},
		{"bad --as", oneServer("ws://a"), func(o *Options) { o.Handle = "a/b" }, "invalid --as"},
		{"bare --join with two servers", oneServer("ws://a", "ws://b"), func(o *Options) { o.Joins = []string{"ops"} }, "URL#CHANNEL"},
		{"--join of another server", oneServer("ws://a"), func(o *Options) { o.Joins = []string{"ws://b#ops"} }, "not one of the servers"},
		{"--join bad name", oneServer("ws://a"), func(o *Options) { o.Joins = []string{"a/b"} }, "invalid channel name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, key, _ := ed25519.GenerateKey(nil)
			o := &Options{Key: key, Config: tt.cfg}
			if tt.mod != nil {
				tt.mod(o)
			}
			_, err := New(o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestJoinsAndSelection(t *testing.T) {
	b := newTestBridge(t, oneServer("ws://a", "ws://b/?via=x", "ws://c"), func(o *Options) {
		o.Servers = []string{"ws://a", "ws://b/?via=x"}
		o.Joins = []string{"ws://a#ops", "ws://b/?via=x#dev#1", "ws://a#ops"}
	})
	if len(b.links) != 2 {
		t.Fatalf("%d links, want 2", len(b.links))
	}
	if got := channelNames(b.byURL["ws://a"]); len(got) != 1 || got[0] != "ops" {
		t.Errorf("ws://a joins %v", got)
	}
	if got := channelNames(b.byURL["ws://b/?via=x"]); len(got) != 1 || got[0] != "dev#1" {
		t.Errorf("ws://b joins %v", got)
	}
	if _, err := b.resolve(""); err == nil || !strings.Contains(err.Error(), "multiple servers connected; pass `server`") {
		t.Errorf("resolve(\"\") = %v", err)
	}
	if _, err := b.resolve("ws://c"); err == nil || !strings.Contains(err.Error(), "not connected to server `ws://c`") {
		t.Errorf("resolve(ws://c) = %v", err)
	}
}

func TestPinnedDuplicateDisabledAtStart(t *testing.T) {
	cfg := oneServer("ws://a", "ws://alias")
	cfg.Servers[0].ServerID = "id1"
	cfg.Servers[1].ServerID = "id1"
	b := newTestBridge(t, cfg, nil)
	if !b.byURL["ws://alias"].disabled() || b.byURL["ws://a"].disabled() {
		t.Fatal("the second URL of server id1 is not disabled")
	}
	n := contents(queued(b))
	if len(n) != 1 || !strings.Contains(n[0], "is the same server as") || !strings.Contains(n[0], "disabled") {
		t.Errorf("notices %q", n)
	}
	// With one server left, tools need no server argument.
	if l, err := b.resolve(""); err != nil || l.url != "ws://a" {
		t.Errorf("resolve(\"\") = %v, %v", l, err)
	}
	if _, err := b.resolve("ws://alias"); err == nil || !strings.Contains(err.Error(), "same server") {
		t.Errorf("resolve(alias) = %v", err)
	}
	// A dial that reaches a claimed id from another URL is a duplicate; a
	// reconnect of the same URL is not.
	if c, dup := b.claim("id1", "ws://a"); dup {
		t.Errorf("re-claim by the same URL refused (canonical %s)", c)
	}
	if c, dup := b.claim("id1", "ws://other"); !dup || c != "ws://a" {
		t.Errorf("claim by another URL = %q, %v", c, dup)
	}
	if _, dup := b.claim("id2", "ws://other"); dup {
		t.Error("a different id was refused")
	}
}

// channelNames returns the channels l's session joins on every
// connection, in order.
func channelNames(l *link) []string {
	var out []string
	for _, c := range l.sess.Channels() {
		out = append(out, c.Name)
	}
	return out
}

func toolNames(tools []mcp.Tool) []string {
	var out []string
	for _, t := range tools {
		out = append(out, t.Name)
	}
	return out
}

func TestToolFilter(t *testing.T) {
	b := newTestBridge(t, oneServer("ws://a"), nil)
	base := "join_channel,leave_channel,list_channels,who,catch_up,set_perm"
	if got := strings.Join(toolNames(b.filterTools(context.Background(), b.tools)), ","); got != base {
		t.Errorf("offered %s, want %s", got, base)
	}
	// A call sees its one tool whatever is offered.
	send := b.tools[6]
	if got := b.filterTools(context.Background(), []mcp.Tool{send}); len(got) != 1 || got[0].Name != "send_channel" {
		t.Errorf("call-time filter = %v", toolNames(got))
	}
	l := b.byURL["ws://a"]

	// converse on a channel that is not joined: still no emit tools.
	b.policy.set("ws://a", "ops", false, identity.Converse)
	b.refreshTools()
	if n := queued(b); len(n) != 0 {
		t.Errorf("list_changed without a change: %v", contents(n))
	}
	l.sess.Add("ops")
	b.refreshTools()
	if n := queued(b); len(n) != 1 || n[0].method != methodToolsListChanged {
		t.Errorf("after joining a converse channel: %v", contents(n))
	}
	want := base + ",send_channel,whisper"
	if got := strings.Join(toolNames(b.filterTools(context.Background(), b.tools)), ","); got != want {
		t.Errorf("offered %s, want %s", got, want)
	}
	b.refreshTools()
	if n := queued(b); len(n) != 0 {
		t.Errorf("list_changed repeated: %v", contents(n))
	}

	// Admin tools follow the server's admin flag.
	l.mu.Lock()
	l.admin = true
	l.mu.Unlock()
	b.refreshTools()
	if got := b.filterTools(context.Background(), b.tools); len(got) != 22 {
		t.Errorf("with admin: %d tools, want 22", len(got))
	}
	// The whisper scope alone offers the emit tools too.
	b2 := newTestBridge(t, oneServer("ws://a"), nil)
	b2.policy.set("ws://a", "", true, identity.Act)
	b2.refreshTools()
	if got := toolNames(b2.filterTools(context.Background(), b2.tools)); len(got) != 8 {
		t.Errorf("whisper scope at act: offered %v", got)
	}
}

func TestEmitRefusedBelowConverse(t *testing.T) {
	b := newTestBridge(t, oneServer("ws://a"), nil)
	_, err := b.sendChannel(context.Background(), args{"channel": "ops", "text": "hi"})
	if err == nil || !strings.Contains(err.Error(), "permission denied") || !strings.Contains(err.Error(), "below `converse`") {
		t.Errorf("send at notify: %v", err)
	}
	_, err = b.whisper(context.Background(), args{"target": "a/b/c", "text": "hi"})
	if err == nil || !strings.Contains(err.Error(), "whispers on `ws://a` are below `converse`") {
		t.Errorf("whisper at notify: %v", err)
	}
	_, err = b.whisper(context.Background(), args{"target": "nope", "text": "hi"})
	if err == nil || !strings.Contains(err.Error(), "user/machine/session") {
		t.Errorf("whisper to a bad path: %v", err)
	}
	_, err = b.sendChannel(context.Background(), args{"channel": "ops"})
	if err == nil || err.Error() != "`channel` and `text` are required" {
		t.Errorf("send without text: %v", err)
	}
}

func TestSetPermScopes(t *testing.T) {
	b := newTestBridge(t, oneServer("ws://a"), nil)
	ctx := context.Background()
	if _, err := b.setPerm(ctx, args{"level": "loud"}); err == nil || !strings.Contains(err.Error(), "mute, notify, converse, act") {
		t.Errorf("bad level: %v", err)
	}
	if _, err := b.setPerm(ctx, args{"channel": "ops", "level": "act"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.setPerm(ctx, args{"channel": "ops", "whisper": true, "level": "converse"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.setPerm(ctx, args{"level": "mute"}); err != nil {
		t.Fatal(err)
	}
	if got := b.policy.channel("ws://a", "ops"); got != identity.Act {
		t.Errorf("ops = %s, want act", got)
	}
	if got := b.policy.whisper("ws://a"); got != identity.Converse {
		t.Errorf("whispers = %s, want converse (whisper wins over channel)", got)
	}
	if got := b.policy.channel("ws://a", "dev"); got != identity.Mute {
		t.Errorf("default = %s, want mute", got)
	}
}

func TestInboundPerLevel(t *testing.T) {
	b := newTestBridge(t, oneServer("ws://a"), nil)
	l := b.byURL["ws://a"]
	msg := func() *protocol.Frame {
		return &protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", From: "d/e/f", Body: str("hi"), Seq: 7}
	}
	l.event(msg())
	if n := contents(queued(b)); len(n) != 1 || !strings.Contains(n[0], "do not reply or act") {
		t.Errorf("notify: %q", n)
	}
	b.policy.set("ws://a", "ops", false, identity.Mute)
	l.event(msg())
	if n := queued(b); len(n) != 0 {
		t.Errorf("mute delivered %q", contents(n))
	}
	b.policy.set("ws://a", "", true, identity.Mute)
	l.event(&protocol.Frame{Type: protocol.TWhisper, From: "d/e/f", Body: str("psst")})
	if n := queued(b); len(n) != 0 {
		t.Errorf("muted whisper delivered %q", contents(n))
	}
}

func TestUnsubscribedAndRenamed(t *testing.T) {
	b := newTestBridge(t, oneServer("ws://a"), func(o *Options) { o.Joins = []string{"ops", "dev"} })
	l := b.byURL["ws://a"]
	b.policy.set("ws://a", "dev", false, identity.Act)
	b.refreshTools()
	queued(b)
	l.event(&protocol.Frame{Type: protocol.TUnsubscribed, Channel: "ops", Reason: "kicked from the channel by root"})
	l.event(&protocol.Frame{Type: protocol.TRenamed, Channel: "dev", NewName: "development"})
	n := contents(queued(b))
	if len(n) != 2 || !strings.Contains(n[0], "kicked from the channel by root") || !strings.Contains(n[1], "renamed to `development`") {
		t.Errorf("notices %q", n)
	}
	// The session follows both itself (control's TestSessionFollowsRenameAcrossReconnect).
	if got := b.policy.channel("ws://a", "development"); got != identity.Act {
		t.Errorf("renamed channel's level %s, want act", got)
	}
}

func TestFlappingExplicitHandle(t *testing.T) {
	b := newTestBridge(t, oneServer("ws://a"), func(o *Options) { o.Handle = "razel" })
	l := b.byURL["ws://a"]
	var fl flapper
	flap := func(uptime time.Duration) []string {
		_, gen := b.handle.current()
		l.up2(&fl)
		queued(b)
		l.dropped(nil, uptime, gen, &fl)
		return contents(queued(b))
	}
	for i := 0; i < 2; i++ {
		n := flap(time.Second)
		if len(n) != 1 || !strings.Contains(n[0], "Disconnected") || strings.Contains(n[0], "--as") {
			t.Errorf("flap %d: %q", i+1, n)
		}
	}
	if n := flap(time.Second); len(n) != 1 || !strings.Contains(n[0], "--as") {
		t.Errorf("flap 3: %q, want the --as diagnosis", n)
	}
	for i := 0; i < 3; i++ {
		if n := flap(time.Second); len(n) != 0 {
			t.Errorf("quiet flap %d: %q", i+4, n)
		}
	}
	if name, _ := b.handle.current(); name != "razel" {
		t.Errorf("explicit handle renamed to %s", name)
	}
	if n := flap(31 * time.Second); len(n) != 1 || !strings.Contains(n[0], "Disconnected") {
		t.Errorf("after a stable link: %q", n)
	}
}

func TestFlappingRenamesDefaultedHandle(t *testing.T) {
	b := newTestBridge(t, oneServer("ws://a"), nil)
	l := b.byURL["ws://a"]
	var fl flapper
	for _, want := range []string{"razel-2", "razel-3"} {
		var last []string
		for i := 0; i < 3; i++ {
			_, gen := b.handle.current()
			l.up2(&fl)
			queued(b)
			l.dropped(nil, time.Second, gen, &fl)
			last = contents(queued(b))
		}
		if len(last) != 1 || !strings.Contains(last[0], want) || !strings.Contains(last[0], "--as") {
			t.Errorf("third flap: %q, want a notice naming %s", last, want)
		}
		if name, _ := b.handle.current(); name != want {
			t.Errorf("handle %s, want %s", name, want)
		}
	}
	// A link that dialled with an old generation does not rename again.
	if _, _, ok := b.handle.rename(1); ok {
		t.Error("a stale generation renamed the handle")
	}
}

// up2 is the notice half of link.up, without a connection.
func (l *link) up2(fl *flapper) {
	if fl.disconnected {
		fl.disconnected = false
		l.b.out.push(methodChannel, notice(l.url, kindLink, "", "Reconnected"))
	}
}

func TestDefaultHandle(t *testing.T) {
	tests := []struct{ dir, want string }{
		{"/home/a/fleet", "fleet"},
		{"/home/a/fleet/", "fleet"},
		{"/", "session"},
		{"", "session"},
		{"/x/ spaced ", "spaced"},
		{"/x/My Project", "my-project"},
		{"/x/Zürich", "zurich"},
		{"/x/.config", "config"},
		{"/x/alice\u200b", "alice"},
		{"/x/\u202eevil", "evil"},
		{"/x/soft\u00adhyphen", "softhyphen"},
		{"/x/\ufeffbom", "bom"},
		{"/x/ａｌｉｃｅ", "alice"},
		{"/x/аlice", "lice"},
		{"/x/alice∕laptop", "alice-laptop"},
		{"/x/日本語", "session"},
		{"/x/" + strings.Repeat("é", 40), strings.Repeat("e", 40)},
		{"/x/" + strings.Repeat("ab ", 40), strings.Repeat("ab-", 21) + "a"},
		{"/x/" + strings.Repeat("x", 63) + " y", strings.Repeat("x", 63)},
	}
	for _, tt := range tests {
		got := DefaultHandle(tt.dir)
		if got != tt.want {
			t.Errorf("DefaultHandle(%q) = %q, want %q", tt.dir, got, tt.want)
		}
		if err := protocol.CheckNewName(got); err != nil {
			t.Errorf("DefaultHandle(%q) = %q, outside the name profile: %v", tt.dir, got, err)
		}
	}
	h := newHandle(strings.Repeat("x", 64), false)
	h.rename(1)
	if name, _ := h.current(); len(name) != 64 || !strings.HasSuffix(name, "-2") {
		t.Errorf("renamed long handle %q", name)
	}
}

func TestBackoff(t *testing.T) {
	within := func(d, base time.Duration) bool { return d >= base && d <= base+base/4 }
	b := newBackoff()
	var got []time.Duration
	for i := 0; i < 10; i++ {
		got = append(got, b.Next())
	}
	want := []time.Duration{200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000}
	for i := range want {
		if !within(got[i], want[i]*time.Millisecond) {
			t.Fatalf("delays %v, want %v ms plus jitter", got, want)
		}
	}
	b.Reset()
	if d := b.Next(); !within(d, backoffBase) {
		t.Errorf("after reset %v", d)
	}
}

func TestEmitBudget(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	bu := newBudget(3, clock)
	for i := 0; i < 3; i++ {
		if err := bu.take("ws://a", "channel ops"); err != nil {
			t.Fatalf("send %d: %v", i+1, err)
		}
	}
	err := bu.take("ws://a", "channel ops")
	if err == nil || !strings.Contains(err.Error(), "emit budget spent") || !strings.Contains(err.Error(), "emit_budget = 3") {
		t.Fatalf("fourth send: %v", err)
	}
	if err := bu.take("ws://a", "channel dev"); err != nil {
		t.Errorf("another channel shares the budget: %v", err)
	}
	if err := bu.take("ws://b", "channel ops"); err != nil {
		t.Errorf("another server shares the budget: %v", err)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if err := bu.take("ws://a", "channel ops"); err != nil {
		t.Errorf("a minute later: %v", err)
	}
}

func TestFailedSendsAreRefunded(t *testing.T) {
	cfg := oneServer("ws://a")
	cfg.EmitBudget = 2
	cfg.DefaultPermission = identity.Converse
	b := newTestBridge(t, cfg, nil)
	// The link never connects: every send fails, and gives its message
	// back to the budget.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := 0; i < 5; i++ {
		if _, err := b.sendChannel(ctx, args{"channel": "ops", "text": "x"}); err == nil || strings.Contains(err.Error(), "budget") {
			t.Fatalf("send %d: %v", i+1, err)
		}
	}
	b.budget.take("ws://a", "channel ops")
	b.budget.take("ws://a", "channel ops")
	if _, err := b.sendChannel(ctx, args{"channel": "ops", "text": "x"}); err == nil || !strings.Contains(err.Error(), "emit budget spent") {
		t.Errorf("send over the budget: %v", err)
	}
}

func TestPermissionRequestsNeverReachTheModel(t *testing.T) {
	b := newTestBridge(t, oneServer("ws://a"), nil)
	b.onPermissionRequest(map[string]any{"request_id": "abcde", "tool_name": "Bash", "description": "run <ls>", "input_preview": `{"command":"ls"}`})
	b.onPermissionRequest(map[string]any{"request_id": "bad id!", "tool_name": "Bash"}) // refused: logged only
	b.onPermissionRequest(map[string]any{"tool_name": "Bash"})                          // no id: logged only
	if n := queued(b); len(n) != 0 {
		t.Fatalf("the session was told %+v", n)
	}
	if live := b.perms.live(b.now()); len(live) != 1 || live[0].id != "abcde" || live[0].tool != "Bash" {
		t.Fatalf("pending = %+v", live)
	}
	for _, tl := range b.tools {
		if strings.Contains(tl.Name, "permission") {
			t.Errorf("tool %s", tl.Name)
		}
	}
	// A verdict from the server goes to Claude Code once, with the id as
	// Claude Code sent it; a second one (or one for an unknown id) is
	// dropped.
	l := b.links[0]
	b.onVerdict(l, &protocol.Frame{Type: protocol.TPermissionVerdict, RequestID: "ABCDE", Behavior: "deny", From: "alice/phone/cli-1"})
	n := queued(b)
	if len(n) != 1 || n[0].method != methodPermission || n[0].params["request_id"] != "abcde" || n[0].params["behavior"] != "deny" {
		t.Fatalf("verdict %+v", n)
	}
	b.onVerdict(l, &protocol.Frame{Type: protocol.TPermissionVerdict, RequestID: "abcde", Behavior: "allow"})
	b.onVerdict(l, &protocol.Frame{Type: protocol.TPermissionVerdict, RequestID: "zzzzz", Behavior: "allow"})
	if n := queued(b); len(n) != 0 {
		t.Fatalf("late verdicts went out: %+v", n)
	}
}

func TestPendingPermissionsExpire(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	b := newTestBridge(t, oneServer("ws://a"), func(o *Options) { o.Now = func() time.Time { return now } })
	b.onPermissionRequest(map[string]any{"request_id": "abcde", "tool_name": "Bash"})
	if len(b.perms.live(now.Add(permissionTTL-time.Second))) != 1 {
		t.Fatal("expired too early")
	}
	if len(b.perms.live(now.Add(permissionTTL))) != 0 {
		t.Fatal("kept past the TTL")
	}
}

func TestAdminGate(t *testing.T) {
	b := newTestBridge(t, oneServer("ws://a"), nil)
	for _, f := range []toolFunc{b.createChannel, b.unban, b.aclList} {
		_, err := f(context.Background(), args{"name": "ops", "channel": "ops", "user": "bob"})
		if err == nil || !strings.Contains(err.Error(), "not an admin on `ws://a`") {
			t.Errorf("non-admin: %v", err)
		}
	}
}

func TestAwaitFailsFastForADownLink(t *testing.T) {
	b := newTestBridge(t, oneServer("ws://a"), nil)
	l := b.byURL["ws://a"]
	l.setDown(context.DeadlineExceeded, time.Minute)
	start := time.Now()
	_, err := l.await(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not connected to `ws://a` yet") || time.Since(start) > time.Second {
		t.Errorf("await on a link down for a minute: %v after %v", err, time.Since(start))
	}
}
