package server

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/protocol"
)

func TestChannelFanOutAndWhisper(t *testing.T) {
	env := newTestEnv(t, Config{})
	a := env.register("aaron", "wa", "razel")
	d := env.register("david", "desk", "main")
	c := env.register("carol", "lap", "x")
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "lobby"})
	for _, cl := range []*client{a, d, c} {
		if j := cl.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "lobby"}); j.Type != protocol.TJoined || j.Channel != "lobby" {
			t.Fatalf("join = %+v", j)
		}
	}
	// The client's "from" is ignored; the server stamps the sender.
	r := a.ok(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "lobby", From: "david/desk/main", Body: body("hello")})
	if r.Type != protocol.TAck || r.Seq == 0 {
		t.Fatalf("post reply = %+v, want ack with seq", r)
	}
	for _, cl := range []*client{d, c} {
		m := cl.nextOfType(protocol.TChannelMsg)
		if m.Channel != "lobby" || m.From != "aaron/wa/razel" || *m.Body != "hello" || m.Seq != r.Seq || m.ID != "" {
			t.Fatalf("delivery = %+v", m)
		}
	}
	a.quiet(100 * time.Millisecond) // no echo to the sender

	w := a.ok(&protocol.Frame{Type: protocol.TWhisper, Target: "david/desk/main", Body: body("psst")})
	if w.Type != protocol.TAck {
		t.Fatalf("whisper reply = %+v", w)
	}
	got := d.nextOfType(protocol.TWhisper)
	if got.From != "aaron/wa/razel" || *got.Body != "psst" {
		t.Fatalf("whisper delivery = %+v", got)
	}
	c.quiet(150 * time.Millisecond)

	// Unknown user and offline session: the same refusal.
	e1 := a.fail(&protocol.Frame{Type: protocol.TWhisper, Target: "ghost/box/sess", Body: body("x")}, protocol.CodeNotFound)
	e2 := a.fail(&protocol.Frame{Type: protocol.TWhisper, Target: "david/desk/offline", Body: body("x")}, protocol.CodeNotFound)
	norm := func(m, target string) string { return strings.ReplaceAll(m, target, "T") }
	if norm(e1.Message, "ghost/box/sess") != norm(e2.Message, "david/desk/offline") {
		t.Fatalf("whisper refusals differ: %q vs %q", e1.Message, e2.Message)
	}
}

func TestPostRequiresSubscription(t *testing.T) {
	env := newTestEnv(t, Config{})
	a := env.register("aaron", "wa", "s")
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	a.fail(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: body("x")}, protocol.CodeNotFound)
	a.fail(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "nope", Body: body("x")}, protocol.CodeNotFound)
	a.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	a.ok(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: body("x")})
	a.ok(&protocol.Frame{Type: protocol.TLeave, Channel: "ops"})
	a.fail(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: body("x")}, protocol.CodeNotFound)
}

func TestChannelListWhoAndErrors(t *testing.T) {
	env := newTestEnv(t, Config{MaxBody: 10})
	a := env.register("aaron", "wa", "s")
	b := env.register("bob", "m", "s")
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	a.fail(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"}, protocol.CodeConflict)
	a.fail(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "a/b"}, protocol.CodeMalformed)
	a.fail(&protocol.Frame{Type: protocol.TJoin, Channel: "ghost"}, protocol.CodeNotFound)
	list := b.ok(&protocol.Frame{Type: protocol.TListChannels})
	if len(list.Channels) != 1 || list.Channels[0] != (protocol.ChannelInfo{Name: "ops", Visibility: protocol.Public, Member: false}) {
		t.Fatalf("bob's channel list = %+v", list.Channels)
	}
	b.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	who := a.ok(&protocol.Frame{Type: protocol.TWho, Channel: "ops"})
	if strings.Join(who.Sessions, ",") != "bob/m/s" {
		t.Fatalf("who ops = %v", who.Sessions)
	}
	all := a.ok(&protocol.Frame{Type: protocol.TWho})
	if strings.Join(all.Sessions, ",") != "aaron/wa/s,bob/m/s" {
		t.Fatalf("who = %v", all.Sessions)
	}
	b.fail(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: body("12345678901")}, protocol.CodeTooLarge)
	// A server-to-client frame from a client is refused; the session stays.
	b.fail(&protocol.Frame{Type: protocol.TPong}, protocol.CodeMalformed)
	b.sendFrame(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"}) // no id
	if f := b.nextOfType(protocol.TError); f.Code != protocol.CodeMalformed || !strings.Contains(f.Message, "id") {
		t.Fatalf("request without id reply = %+v", f)
	}
	b.sendRaw([]byte(`{"type":"nonsense","id":"zz"}`))
	if f := b.nextOfType(protocol.TError); f.Code != protocol.CodeMalformed {
		t.Fatalf("unknown frame type reply = %+v", f)
	}
	b.ok(&protocol.Frame{Type: protocol.TPing})
}

func TestMachinesAddListRemove(t *testing.T) {
	env := newTestEnv(t, Config{})
	a := env.register("aaron", "wa", "s")
	laptop := newKey(t)
	a.ok(&protocol.Frame{Type: protocol.TMachineAdd, Machine: "laptop", Pubkey: pubOf(laptop)})
	a.fail(&protocol.Frame{Type: protocol.TMachineAdd, Machine: "laptop", Pubkey: pubOf(newKey(t))}, protocol.CodeConflict)
	a.fail(&protocol.Frame{Type: protocol.TMachineAdd, Machine: "other", Pubkey: pubOf(laptop)}, protocol.CodeConflict)
	l := a.ok(&protocol.Frame{Type: protocol.TListMachines})
	if len(l.Machines) != 2 || l.Machines[0].Name != "laptop" || !strings.HasPrefix(l.Machines[0].Fingerprint, "SHA256:") {
		t.Fatalf("machines = %+v", l.Machines)
	}
	on := env.login(laptop, "onthego")
	if on.path != "aaron/laptop/onthego" {
		t.Fatalf("laptop path = %q", on.path)
	}
	a.ok(&protocol.Frame{Type: protocol.TMachineRemove, Machine: "laptop"})
	last := on.waitClosed()
	if last == nil || protocol.Reason(last.Reason) != protocol.ReasonMachineGone {
		t.Fatalf("laptop session's last frame = %+v", last)
	}
	if _, f := env.handshake(laptop, "again", nil); f.Code != protocol.CodeUnauthorized {
		t.Fatalf("removed key still authenticates: %+v", f)
	}
}

func TestRemovingOwnMachineAcksBeforeDrop(t *testing.T) {
	env := newTestEnv(t, Config{})
	a := env.register("aaron", "wa", "s")
	r := a.req(&protocol.Frame{Type: protocol.TMachineRemove, Machine: "wa"})
	if r.Type != protocol.TAck || r.Detail != "wa" {
		t.Fatalf("reply = %+v, want ack", r)
	}
	if last := a.waitClosed(); last == nil || protocol.Reason(last.Reason) != protocol.ReasonMachineGone {
		t.Fatalf("last frame = %+v", last)
	}
}

func TestSlowConsumerIsDropped(t *testing.T) {
	env := newTestEnv(t, Config{QueueLen: 4, MaxBody: 1 << 20})
	a := env.register("aaron", "wa", "s")
	slow := env.register("slow", "m", "s")
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	a.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	slow.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	// The slow client stops reading once its current read returns.
	locked := make(chan struct{})
	go func() { slow.readMu.Lock(); close(locked) }()
	defer func() { <-locked; slow.readMu.Unlock() }()
	big := strings.Repeat("x", 512<<10)
	for i := 0; i < 400 && env.srv.hub.lookup("slow/m/s") != nil; i++ {
		a.ok(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: &big})
	}
	if env.srv.hub.lookup("slow/m/s") != nil {
		t.Fatal("a client that never reads is still present after 200 MiB of deliveries")
	}
	a.ok(&protocol.Frame{Type: protocol.TPing}) // the publisher is untouched
}

func TestShutdownClosesSessionsWithReason(t *testing.T) {
	env := newTestEnv(t, Config{})
	a := env.register("aaron", "wa", "s")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := env.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if last := a.waitClosed(); last == nil || protocol.Reason(last.Reason) != protocol.ReasonShutdown {
		t.Fatalf("last frame = %+v", last)
	}
}

func pubOf(k ed25519.PrivateKey) []byte { return k.Public().(ed25519.PublicKey) }
