package server

// Hostile cases about what the server holds for a reader: byte budgets on
// each session's outbound queue, the size of coalesced messages, and
// liveness of clients that only listen. They run in TestHostileClients.

import (
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/protocol"
)

// escapedBody is a body of n '<', which JSON encoding sends as \u003c: six
// bytes on the wire for each byte of body.
func escapedBody(n int) string { return strings.Repeat("<", n) }

// queuedBytes reads conclave_outbound_queued_bytes from /metrics.
func (h *hostile) metric(t *testing.T, name string) int {
	t.Helper()
	resp, err := http.Get(h.env.ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, name+" "); ok {
			var n int
			fmt.Sscan(rest, &n)
			return n
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

// A reader that falls behind a flood of bodies that escape to six times
// their size is dropped once what is queued for it goes over its byte
// budget — long before its 1024 frames — and it is told why, whispers
// included; the server never holds more than the budget (and one frame)
// for it, and the sender and the other subscribers get everything.
func attackSlowReaderFlood(t *testing.T, h *hostile) {
	const budget = 2 << 20
	h.mallory.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	h.alice.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	sess := h.env.srv.hub.lookup("mallory/evil/s")
	locked := make(chan struct{})
	go func() { h.mallory.readMu.Lock(); close(locked) }()
	big := escapedBody(60_000)
	frame := len(protocol.MustEncode(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", From: "alice/wa/s", Body: &big, TsMs: 1, Seq: 1}))
	sent, peak := 0, 0
	for h.env.srv.hub.lookup("mallory/evil/s") != nil {
		if sent == 200 {
			t.Fatalf("a reader behind a flood is still present after %d posts of %d bytes each on the wire", sent, frame)
		}
		h.alice.ok(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: &big})
		sent++
		b, _ := sess.out.usage()
		peak = max(peak, b)
		h.carolSees = append(h.carolSees, "channel_msg:ops:alice/wa/s")
	}
	// It reads again: what reached it before the drop, then the reason
	// (the server's write to it waits for that, up to WriteTimeout).
	<-locked
	h.mallory.readMu.Unlock()
	if peak > budget+frame {
		t.Errorf("the server held %d bytes for the slow reader, budget %d", peak, budget)
	}
	if n := h.metric(t, "conclave_slow_consumer_drops_total"); n != 1 {
		t.Errorf("conclave_slow_consumer_drops_total = %d, want 1", n)
	}
	t.Logf("dropped after %d posts (%d bytes each on the wire), at most %d bytes queued", sent, frame, peak)
	last := waitClosedWithin(t, h.mallory, 2*time.Minute) // decoding the backlog is slow under -race
	wantErr(t, "the slow reader's last frame", last, protocol.CodeUnauthorized, protocol.ReasonSlowConsumer.Text())
	if protocol.Reason(last.Reason) != protocol.ReasonSlowConsumer {
		t.Errorf("the slow reader's last frame has reason %q, want %q", last.Reason, protocol.ReasonSlowConsumer)
	}
	if !strings.Contains(last.Message, "whispers are not stored") {
		t.Errorf("the drop reason %q does not say that queued whispers are lost", last.Message)
	}
	if n := h.metric(t, "conclave_outbound_queued_bytes"); n > 1<<20 {
		t.Errorf("conclave_outbound_queued_bytes = %d once the slow reader is gone", n)
	}
}

// A reader that pauses while a channel carries 256 and more bodies that
// escape to six times their size, with a budget large enough to keep
// it, gets them in messages no larger than the server announced in
// established (its client's read limit here), and so stays connected.
func attackCoalescedOverLimit(t *testing.T, h *hostile) {
	c, f := h.env.handshake(h.malKey, "reader", nil)
	if f.Type != protocol.TEstablished || f.MaxMessage != protocol.MaxMessage || f.MaxBody != protocol.DefaultMaxBody {
		t.Fatalf("established = %+v, want max_message %d and max_body %d", f, protocol.MaxMessage, protocol.DefaultMaxBody)
	}
	c.conn.SetReadLimit(int64(f.MaxMessage))
	c.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	h.alice.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	locked := make(chan struct{})
	go func() { c.readMu.Lock(); close(locked) }()
	big := escapedBody(protocol.DefaultMaxBody)
	const n = 300
	for i := 0; i < n; i++ {
		h.alice.ok(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: &big})
		h.carolSees = append(h.carolSees, "channel_msg:ops:alice/wa/s")
	}
	<-locked
	c.readMu.Unlock()
	for i := 0; i < n; i++ {
		if d := c.nextOfType(protocol.TChannelMsg); d.From != "alice/wa/s" {
			t.Fatalf("the paused reader got %+v", d)
		}
	}
	c.ok(&protocol.Frame{Type: protocol.TPing})
}

// Clients that only listen (carol, and mallory here) stay connected
// through several idle timeouts while they receive: the server pings them
// at the WebSocket level, and their pongs count as liveness.
func attackListenOnly(t *testing.T, h *hostile) {
	h.mallory.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	h.alice.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	idle := h.env.srv.cfg.IdleTimeout
	for end := time.Now().Add(4 * idle); time.Now().Before(end); {
		h.alice.ok(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: body("tick")})
		h.carolSees = append(h.carolSees, "channel_msg:ops:alice/wa/s")
		if d := h.mallory.nextOfType(protocol.TChannelMsg); *d.Body != "tick" {
			t.Fatalf("listener got %+v", d)
		}
		time.Sleep(idle / 5)
	}
	if h.env.srv.hub.lookup("mallory/evil/s") == nil {
		t.Fatal("a listening client was reaped")
	}
}

// rawSession is a client written by hand from docs/PROTOCOL.md on a raw
// TCP WebSocket: it authenticates and then never answers a WebSocket
// ping (nor reads, until asked to).
type rawSession struct {
	*wsRaw
}

// rawLogin authenticates key's session on a raw connection.
func (e *testEnv) rawLogin(t *testing.T, key ed25519.PrivateKey, session string) *rawSession {
	t.Helper()
	c, code, err := rawUpgrade(strings.TrimPrefix(e.ts.URL, "http://"))
	if err != nil || c == nil {
		t.Fatalf("upgrade: %d %v", code, err)
	}
	t.Cleanup(func() { c.conn.Close() })
	r := &rawSession{c}
	r.send(t, &protocol.Frame{Type: protocol.THello, Version: 1, Session: session})
	ch := r.next(t)
	pub := key.Public().(ed25519.PublicKey)
	r.send(t, &protocol.Frame{Type: protocol.TAuth, Pubkey: pub, Signature: protocol.SignAuth(key, ch.ServerID, ch.Nonce, session)})
	if f := r.next(t); f.Type != protocol.TEstablished {
		t.Fatalf("raw login: %+v", f)
	}
	return r
}

func (r *rawSession) send(t *testing.T, f *protocol.Frame) {
	t.Helper()
	b, _ := json.Marshal(f)
	if _, err := r.conn.Write(maskedText(b)); err != nil {
		t.Fatal(err)
	}
}

// next reads the next text message (skipping control frames, which it
// does not answer) and returns its first frame; nil once the connection
// is closed.
func (r *rawSession) next(t *testing.T) *protocol.Frame {
	t.Helper()
	r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var hdr [2]byte
		if _, err := io.ReadFull(r.br, hdr[:]); err != nil {
			return nil
		}
		n := uint64(hdr[1] & 0x7f)
		switch n {
		case 126:
			var ext [2]byte
			io.ReadFull(r.br, ext[:])
			n = uint64(binary.BigEndian.Uint16(ext[:]))
		case 127:
			var ext [8]byte
			io.ReadFull(r.br, ext[:])
			n = binary.BigEndian.Uint64(ext[:])
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r.br, payload); err != nil {
			return nil
		}
		switch hdr[0] & 0x0f {
		case 0x8: // close
			return nil
		case 0x1:
			fs, err := protocol.DecodeMessage(payload)
			if err != nil || len(fs) == 0 {
				t.Fatalf("raw client: undecodable message %q: %v", payload, err)
			}
			return fs[0]
		}
	}
}

// --max-body has a ceiling: a body that large, escaped, still fits in the
// largest message the server sends.
func TestMaxBodyCeiling(t *testing.T) {
	_, err := New(Config{Ephemeral: true, MaxBody: protocol.MaxBodyCeiling + 1})
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "MaxBody" || !strings.Contains(err.Error(), "ceiling") || strings.Contains(err.Error(), "--") {
		t.Fatalf("New with a body cap over the ceiling: %v, want a ConfigError for MaxBody that names no flag", err)
	}
	if 6*protocol.MaxBodyCeiling+4096 > protocol.MaxMessage {
		t.Fatalf("a body of %d bytes escaped does not fit in a message of %d", protocol.MaxBodyCeiling, protocol.MaxMessage)
	}
	env := newTestEnv(t, Config{MaxBody: protocol.MaxBodyCeiling})
	a := env.register("aaron", "m", "s")
	b := env.register("bob", "m", "s")
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	a.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	b.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	big := escapedBody(protocol.MaxBodyCeiling)
	a.sendFrame(&protocol.Frame{Type: protocol.TChannelMsg, ID: "big", Channel: "ops", Body: &big})
	// Escaping six megabytes is slow under the race detector: wait longer
	// than next does.
	for _, c := range []*client{a, b} {
		select {
		case f, ok := <-c.frames:
			switch {
			case !ok:
				t.Fatal("connection closed")
			case c == a && f.Type != protocol.TAck:
				t.Fatalf("the largest body: %+v", f)
			case c == b && (f.Body == nil || len(*f.Body) != len(big)):
				t.Fatalf("the largest body did not arrive whole")
			}
		case <-time.After(2 * time.Minute):
			t.Fatal("the largest body was neither acknowledged nor delivered")
		}
	}
}

// waitClosedWithin is client.waitClosed with a deadline of d.
func waitClosedWithin(t *testing.T, c *client, d time.Duration) *protocol.Frame {
	t.Helper()
	var last *protocol.Frame
	timeout := time.After(d)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				return last
			}
			if f.Type == protocol.TError {
				last = f
			}
		case <-timeout:
			t.Fatalf("connection still open after %v", d)
		}
	}
}
