package server

// Hostile clients: a table of attacks, each run against its own real
// in-process server (newTestEnv) with bystander sessions. Every attack
// checks the refusal it gets (code, and text where the text matters), and
// afterwards that the server is still up and that the bystanders saw
// nothing. docs/SECURITY.md lists these attacks with what defends against
// each.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/conclave/conclave/control"
	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

// hostile is one attack's world: a server with a pinned admin (root), a
// channel owner (alice, owner of the public "ops" and the private
// "secret"), a bystander (carol, member of secret, subscribed to ops and
// secret) and an attacker (mallory, registered, subscribed to nothing).
type hostile struct {
	env     *testEnv
	rootKey ed25519.PrivateKey
	root    *client
	alice   *client
	carol   *client
	mallory *client
	malKey  ed25519.PrivateKey
	// carolSees is what carol is expected to receive during the attack;
	// anything else fails the test.
	carolSees []string
}

func newHostile(t *testing.T, cfg Config) *hostile {
	t.Helper()
	h := &hostile{rootKey: newKey(t), malKey: newKey(t)}
	cfg.Admins = append(cfg.Admins, Admin{User: "root", Key: h.rootKey.Public().(ed25519.PublicKey)})
	h.env = newTestEnv(t, cfg)
	var f *protocol.Frame
	h.root, f = h.env.handshake(h.rootKey, "s", &protocol.Frame{Username: "root", Machine: "console"})
	if f.Type != protocol.TEstablished {
		t.Fatalf("root: %+v", f)
	}
	h.alice = h.env.register("alice", "wa", "s")
	h.carol = h.env.register("carol", "wc", "s")
	h.mallory, f = h.env.handshake(h.malKey, "s", &protocol.Frame{Username: "mallory", Machine: "evil"})
	if f.Type != protocol.TEstablished {
		t.Fatalf("mallory: %+v", f)
	}
	h.alice.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	h.alice.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "secret", Visibility: "private"})
	h.alice.ok(&protocol.Frame{Type: protocol.TACLAdd, Channel: "secret", User: "carol"})
	h.carol.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	h.carol.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "secret"})
	return h
}

// unharmed checks that the server still serves everyone: carol received
// exactly what the attack announced, alice's and carol's sessions are
// live, their channels are as they were, /health is ok and a newcomer can
// register.
func (h *hostile) unharmed(t *testing.T) {
	t.Helper()
	// A ping is answered after every delivery queued before it, so
	// whatever carol was sent during the attack has arrived by its pong.
	id := "unharmed"
	h.carol.sendFrame(&protocol.Frame{Type: protocol.TPing, ID: id})
	var got []string
	for {
		f := h.carol.next()
		if f.Type == protocol.TPong && f.ID == id {
			break
		}
		got = append(got, f.Type+":"+f.Channel+":"+f.From)
	}
	if !slices.Equal(got, h.carolSees) {
		t.Errorf("bystander carol received %q during the attack, want %q", got, h.carolSees)
	}
	h.alice.ok(&protocol.Frame{Type: protocol.TPing})
	who := h.alice.ok(&protocol.Frame{Type: protocol.TWho, Channel: "secret"})
	if !slices.Contains(who.Sessions, "carol/wc/s") {
		t.Errorf("carol is no longer in secret: %v", who.Sessions)
	}
	acl := h.alice.ok(&protocol.Frame{Type: protocol.TACLList, Channel: "secret"})
	if !slices.Equal(acl.Users, []string{"alice", "carol"}) {
		t.Errorf("secret's ACL = %v, want [alice carol]", acl.Users)
	}
	resp, err := http.Get(h.env.ts.URL + "/health")
	if err != nil {
		t.Fatalf("/health: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "ok" {
		t.Errorf("/health = %d %q after the attack", resp.StatusCode, b)
	}
	h.env.register(fmt.Sprintf("newcomer%d", time.Now().UnixNano()%1e6), "m", "s")
}

func TestHostileClients(t *testing.T) {
	attacks := []struct {
		name string
		cfg  Config
		run  func(t *testing.T, h *hostile)
	}{
		{"relay presenting the real server's id", Config{}, attackRelayRealID},
		{"relay presenting the real id in its challenge only", Config{}, attackRelayChallengeOnly},
		{"relay presenting its own id with the real nonce", Config{}, attackRelayOwnID},
		{"replayed signature", Config{}, attackReplayedSignature},
		{"signature for another session", Config{}, attackSignatureOtherSession},
		{"signature for another server", Config{}, attackSignatureOtherServer},
		{"signature over the bare nonce", Config{}, attackSignatureBareNonce},
		{"forged from in a post", Config{}, attackForgedFromPost},
		{"forged from in a whisper", Config{}, attackForgedFromWhisper},
		{"delivery-shaped post without id", Config{}, attackDeliveryShapedPost},
		{"frames before auth", Config{}, attackFramesBeforeAuth},
		{"slow-loris handshakes", Config{HandshakeTimeout: 500 * time.Millisecond}, attackSlowLoris},
		{"thousands of half-open connections", Config{HandshakeTimeout: 2 * time.Second, HandshakesPerIP: -1}, attackHalfOpen},
		{"oversized frame before auth", Config{}, attackOversizedPreAuth},
		{"oversized frame after auth", Config{}, attackOversizedPostAuth},
		{"oversized body", Config{MaxBody: 1024}, attackOversizedBody},
		{"invalid UTF-8", Config{}, attackInvalidUTF8},
		{"deeply nested JSON", Config{}, attackDeepJSON},
		{"unknown frame types", Config{}, attackUnknownTypes},
		{"probing private channel names by error text", Config{}, attackProbeText},
		{"probing private channel names by timing", Config{AdminRate: -1}, attackProbeTiming},
		{"brute-forcing invite tokens", Config{}, attackBruteForceInvites},
		{"re-registering a pinned name with another key", Config{}, attackReRegisterPinned},
		{"re-registering a removed name", Config{}, attackReRegisterRemoved},
		{"lookalike and invisible names", Config{AdminRate: -1}, attackLookalikeNames},
		{"whispering to nobody and to an offline session", Config{}, attackWhisperProbe},
		{"a client that never reads", Config{QueueLen: 8, WriteTimeout: 2 * time.Second, MaxBody: 1 << 20}, attackNeverReads},
		{"a post flood beyond the rate limit", Config{RateLimit: 5, RateBurst: 5}, attackPostFlood},
		{"an admin-event flood beyond the rate limit", Config{AdminRate: 1, AdminBurst: 6}, attackAdminFlood},
		{"a connection flood from one address", Config{MaxConnsPerIP: 40, HandshakesPerIP: -1}, attackConnFlood},
		{"slow readers of a flood of escaped bodies", Config{QueueBytes: 2 << 20, WriteTimeout: time.Minute, IdleTimeout: 10 * time.Minute}, attackSlowReaderFlood},
		{"a paused reader of more coalesced bytes than its read limit", Config{QueueBytes: 256 << 20, WriteTimeout: 10 * time.Minute, IdleTimeout: 10 * time.Minute, NoSync: true}, attackCoalescedOverLimit},
		{"clients that only listen", Config{IdleTimeout: time.Second, ReapInterval: 100 * time.Millisecond}, attackListenOnly},
		{"a damaged history record", Config{NoSync: true}, attackDamagedHistory},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			h := newHostile(t, a.cfg)
			a.run(t, h)
			h.unharmed(t)
		})
	}
}

// wantErr fails unless f is an error frame with code and, if text is not
// empty, a message containing text.
func wantErr(t *testing.T, what string, f *protocol.Frame, code protocol.Code, text string) {
	t.Helper()
	if f == nil || f.Type != protocol.TError || f.Code != code || !strings.Contains(f.Message, text) {
		t.Fatalf("%s: got %+v, want error %s containing %q", what, f, code, text)
	}
}

// rejected reads conclave_rejected_frames_total{code=…} from /metrics.
func (h *hostile) rejected(t *testing.T, code protocol.Code) int {
	t.Helper()
	resp, err := http.Get(h.env.ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	prefix := fmt.Sprintf("conclave_rejected_frames_total{code=%q} ", code)
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			var n int
			fmt.Sscan(rest, &n)
			return n
		}
	}
	return 0
}

// ---- relays: a malicious server between a client and the real server ----

// relay is a malicious server: it accepts a client, opens a connection to
// the real server, passes the client's hello on, and shows the client the
// real server's challenge (the real nonce) under the id it chooses. It
// passes the client's next frames on, and the real server's answer back.
type relay struct {
	url    string
	signed chan *protocol.Frame // auth frames the client handed to the relay
	real   chan *protocol.Frame // the real server's answer to a relayed auth
	done   chan struct{}        // one value per relayed connection that ended
}

func newRelay(t *testing.T, realURL, headerID, challengeID string) *relay {
	t.Helper()
	r := &relay{signed: make(chan *protocol.Frame, 8), real: make(chan *protocol.Frame, 8), done: make(chan struct{}, 8)}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		defer func() { r.done <- struct{}{} }()
		if headerID != "" {
			w.Header().Set(control.ServerIDHeader, headerID)
		}
		victim, err := websocket.Accept(w, req, &websocket.AcceptOptions{Subprotocols: []string{protocol.Subprotocol}})
		if err != nil {
			return
		}
		defer victim.CloseNow()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		upstream, _, err := websocket.Dial(ctx, realURL, nil)
		if err != nil {
			return
		}
		defer upstream.CloseNow()
		_, hello, err := victim.Read(ctx)
		if err != nil || upstream.Write(ctx, websocket.MessageText, hello) != nil {
			return
		}
		_, chb, err := upstream.Read(ctx)
		if err != nil {
			return
		}
		ch, err := protocol.Decode(chb)
		if err != nil {
			return
		}
		ch.ServerID = challengeID
		if victim.Write(ctx, websocket.MessageText, protocol.MustEncode(ch)) != nil {
			return
		}
		for {
			_, b, err := victim.Read(ctx)
			if err != nil {
				return // the client refused to go on: nothing was signed
			}
			if upstream.Write(ctx, websocket.MessageText, b) != nil {
				return
			}
			if f, err := protocol.Decode(b); err == nil && f.Type == protocol.TAuth {
				r.signed <- f
				break
			}
		}
		_, reply, err := upstream.Read(ctx)
		if err != nil {
			return
		}
		if f, err := protocol.Decode(bytes.SplitN(reply, []byte("\n"), 2)[0]); err == nil {
			r.real <- f
		}
		victim.Write(ctx, websocket.MessageText, reply)
	}))
	t.Cleanup(ts.Close)
	r.url = "ws" + strings.TrimPrefix(ts.URL, "http")
	return r
}

// wait waits for the relayed connection to end.
func (r *relay) wait(t *testing.T) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the relayed connection did not end")
	}
}

// victim registers a user on the real server with a key that the user's
// client will then use against a relay.
func (h *hostile) victim(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	key := newKey(t)
	if _, f := h.env.handshake(key, "home", &protocol.Frame{Username: "victim", Machine: "laptop"}); f.Type != protocol.TEstablished {
		t.Fatalf("victim: %+v", f)
	}
	return key
}

// noVictimSession checks that the real server has no live session of the
// victim under the handle the relayed client used.
func (h *hostile) noVictimSession(t *testing.T) {
	t.Helper()
	if who := h.alice.ok(&protocol.Frame{Type: protocol.TWho}).Sessions; slices.Contains(who, "victim/laptop/main") {
		t.Fatalf("the relay obtained a session on the real server: %v", who)
	}
}

func dialVia(url string, key ed25519.PrivateKey, pinned string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := control.Dial(ctx, &control.Options{URL: url, Key: key, Session: "main", PinnedServerID: pinned, DialTimeout: 5 * time.Second})
	if err == nil {
		c.Close()
	}
	return err
}

// The client registered with the relay (pinning the relay's id); the relay
// shows it the real server's challenge, id and all, hoping for a signature
// it can pass on. The pin differs, so the client signs nothing.
func attackRelayRealID(t *testing.T, h *hostile) {
	key := h.victim(t)
	realID := h.env.srv.ServerID()
	r := newRelay(t, h.env.url, realID, realID)
	err := dialVia(r.url, key, "relay-id-pinned-at-registration")
	if !errors.Is(err, identity.ErrServerIDMismatch) {
		t.Fatalf("dial through the relay: %v, want an error wrapping ErrServerIDMismatch", err)
	}
	if !strings.Contains(err.Error(), realID) || !strings.Contains(err.Error(), "relay-id-pinned-at-registration") {
		t.Errorf("the refusal %q does not name both ids", err)
	}
	if control.Reconnectable(err) {
		t.Errorf("control.Reconnectable(%q) = true for a server presenting another id", err)
	}
	r.wait(t)
	if len(r.signed) != 0 {
		t.Fatal("the client signed a relayed challenge")
	}
	h.noVictimSession(t)
}

// As above, but the relay's 101 carries the pinned id and only the
// challenge carries the real one.
func attackRelayChallengeOnly(t *testing.T, h *hostile) {
	key := h.victim(t)
	r := newRelay(t, h.env.url, "relay-id", h.env.srv.ServerID())
	err := dialVia(r.url, key, "relay-id")
	if err == nil {
		t.Fatal("the client authenticated through a relay whose challenge names another id")
	}
	// An impostor is not worth reconnecting to (the bridge and tail retry
	// what control.Reconnectable says).
	if control.Reconnectable(err) {
		t.Errorf("control.Reconnectable(%q) = true for a server whose 101 and challenge name different ids", err)
	}
	r.wait(t)
	if len(r.signed) != 0 {
		t.Fatal("the client signed a relayed challenge")
	}
	h.noVictimSession(t)
}

// The relay presents its own (pinned) id, so the client signs — but the
// signature covers the relay's id, and the real server verifies against
// its own: the relayed signature is refused there.
func attackRelayOwnID(t *testing.T, h *hostile) {
	key := h.victim(t)
	r := newRelay(t, h.env.url, "relay-id", "relay-id")
	err := dialVia(r.url, key, "relay-id")
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeUnauthorized {
		t.Fatalf("dial through the relay: %v, want the real server's unauthorized refusal", err)
	}
	r.wait(t)
	if len(r.signed) != 1 {
		t.Fatal("the client did not sign for its pinned id (the test relayed nothing)")
	}
	wantErr(t, "the real server's answer to the relayed signature", <-r.real, protocol.CodeUnauthorized, "signature verification failed")
	h.noVictimSession(t)
}

// ---- signatures ----

// signedHandshake runs hello, challenge and auth by hand with sign making
// the signature, and returns the auth frame sent and the server's answer.
func (h *hostile) signedHandshake(t *testing.T, key ed25519.PrivateKey, session string, auth *protocol.Frame, sign func(ch *protocol.Frame) []byte) (*protocol.Frame, *protocol.Frame) {
	t.Helper()
	c := h.env.dialRaw()
	c.sendFrame(&protocol.Frame{Type: protocol.THello, Version: 1, Session: session})
	ch := c.next()
	if ch.Type != protocol.TChallenge {
		t.Fatalf("want challenge, got %+v", ch)
	}
	if auth == nil {
		auth = &protocol.Frame{Type: protocol.TAuth, Pubkey: key.Public().(ed25519.PublicKey), Signature: sign(ch)}
	}
	c.sendFrame(auth)
	f := c.next()
	if f.Type != protocol.TEstablished {
		c.waitClosed()
	}
	return auth, f
}

func attackReplayedSignature(t *testing.T, h *hostile) {
	good := func(ch *protocol.Frame) []byte { return protocol.SignAuth(h.malKey, ch.ServerID, ch.Nonce, "main") }
	auth, f := h.signedHandshake(t, h.malKey, "main", nil, good)
	if f.Type != protocol.TEstablished {
		t.Fatalf("honest login: %+v", f)
	}
	// The same auth frame, word for word, on a new connection (while the
	// first session is live, and with the same handle).
	_, f = h.signedHandshake(t, h.malKey, "main", auth, nil)
	wantErr(t, "replayed auth", f, protocol.CodeUnauthorized, "signature verification failed")
}

func attackSignatureOtherSession(t *testing.T, h *hostile) {
	_, f := h.signedHandshake(t, h.malKey, "main", nil, func(ch *protocol.Frame) []byte {
		return protocol.SignAuth(h.malKey, ch.ServerID, ch.Nonce, "other")
	})
	wantErr(t, "signature for another session", f, protocol.CodeUnauthorized, "signature verification failed")
}

func attackSignatureOtherServer(t *testing.T, h *hostile) {
	_, f := h.signedHandshake(t, h.malKey, "main", nil, func(ch *protocol.Frame) []byte {
		return protocol.SignAuth(h.malKey, "another-server-id", ch.Nonce, "main")
	})
	wantErr(t, "signature for another server", f, protocol.CodeUnauthorized, "signature verification failed")
}

func attackSignatureBareNonce(t *testing.T, h *hostile) {
	_, f := h.signedHandshake(t, h.malKey, "main", nil, func(ch *protocol.Frame) []byte {
		return ed25519.Sign(h.malKey, ch.Nonce) // what the Rust reference signed
	})
	wantErr(t, "signature over the bare nonce", f, protocol.CodeUnauthorized, "signature verification failed")
}

// ---- forged fields ----

func attackForgedFromPost(t *testing.T, h *hostile) {
	h.mallory.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	r := h.mallory.req(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: body("from alice, honest"),
		From: "alice/wa/s", TsMs: 1})
	if r.Type != protocol.TAck {
		t.Fatalf("post with a forged from: %+v", r)
	}
	d := h.carol.nextOfType(protocol.TChannelMsg)
	if d.From != "mallory/evil/s" || d.TsMs == 1 {
		t.Fatalf("carol got from %q ts %d, want mallory's own path and the server's time", d.From, d.TsMs)
	}
	page := h.carol.ok(&protocol.Frame{Type: protocol.TReadSince, Channel: "ops"})
	if len(page.Messages) != 1 || page.Messages[0].From != "mallory/evil/s" {
		t.Fatalf("history = %+v, want one message from mallory", page.Messages)
	}
}

func attackForgedFromWhisper(t *testing.T, h *hostile) {
	h.mallory.ok(&protocol.Frame{Type: protocol.TWhisper, Target: "carol/wc/s", Body: body("it's me, alice"), From: "alice/wa/s", TsMs: 1})
	d := h.carol.nextOfType(protocol.TWhisper)
	if d.From != "mallory/evil/s" {
		t.Fatalf("carol got a whisper from %q, want mallory's own path", d.From)
	}
}

// A client frame shaped like a server delivery (from, ts_ms, no id) is
// still a request without an id: docs/PROTOCOL.md §3 says it is refused
// with malformed, and nothing is posted.
func attackDeliveryShapedPost(t *testing.T, h *hostile) {
	h.mallory.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	h.mallory.sendRaw([]byte(`{"type":"channel_msg","channel":"ops","from":"alice/wa/s","ts_ms":1795510800123,"body":"from alice, honest"}`))
	f := h.mallory.next()
	wantErr(t, "channel_msg without id", f, protocol.CodeMalformed, `request has no "id"`)
	if f.ID != "" {
		t.Errorf("the refusal carries id %q", f.ID)
	}
	if page := h.carol.ok(&protocol.Frame{Type: protocol.TReadSince, Channel: "ops"}); len(page.Messages) != 0 {
		t.Fatalf("a request without id was posted: %+v", page.Messages)
	}
}

// ---- handshake abuse ----

func attackFramesBeforeAuth(t *testing.T, h *hostile) {
	hello := `{"type":"hello","version":1,"session":"s"}`
	cases := []struct {
		name string
		send []string
		text string
	}{
		{"request as first frame", []string{`{"type":"join","id":"1","channel":"secret"}`}, "expected hello, got join"},
		{"list before hello", []string{`{"type":"list_channels","id":"1"}`}, "expected hello, got list_channels"},
		{"request after hello", []string{hello, `{"type":"join","id":"1","channel":"secret"}`}, "expected register or auth, got join"},
		{"post after hello", []string{hello, `{"type":"channel_msg","id":"1","channel":"ops","body":"x"}`}, "expected register or auth, got channel_msg"},
		{"request after register", []string{hello, `{"type":"register","username":"zed","machine":"m","pubkey":"` +
			base64.StdEncoding.EncodeToString(make([]byte, 32)) + `"}`, `{"type":"who","id":"1"}`}, "expected auth after register, got who"},
		{"two frames in one message", []string{hello + "\n" + `{"type":"ping"}`}, "send one frame per message"},
		{"server frame from a client", []string{`{"type":"established","path":"root/console/s","admin":true,"server_id":"x"}`}, "expected hello, got established"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := h.env.dialRaw()
			for _, m := range tc.send {
				c.sendRaw([]byte(m))
			}
			wantErr(t, tc.name, c.waitClosed(), protocol.CodeMalformed, tc.text)
		})
	}
}

// wsRaw is a WebSocket client written by hand on a TCP connection, for
// attacks that coder/websocket would not make: trickled bytes, connections
// that upgrade and then say nothing.
type wsRaw struct {
	conn net.Conn
	br   *bufio.Reader
}

// rawUpgrade opens a TCP connection to the test server and upgrades it.
// It returns the HTTP status if the upgrade is refused.
func rawUpgrade(addr string) (*wsRaw, int, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, 0, err
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, 0, err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body.Close()
		conn.Close()
		return nil, resp.StatusCode, nil
	}
	conn.SetDeadline(time.Time{})
	return &wsRaw{conn: conn, br: br}, resp.StatusCode, nil
}

// maskedText frames payload as one masked client text message.
func maskedText(payload []byte) []byte {
	b := []byte{0x81}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	mask := [4]byte{0x5a, 0x17, 0xc3, 0x08}
	b = append(b, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i%4])
	}
	return b
}

func (h *hostile) addr() string { return strings.TrimPrefix(h.env.ts.URL, "http://") }

// Slow-loris: clients that upgrade and then trickle their hello one byte
// at a time, far slower than the handshake timeout allows. Each is cut off
// at the timeout with "handshake timed out"; meanwhile a legitimate client
// registers and is served.
func attackSlowLoris(t *testing.T, h *hostile) {
	const n = 20
	type result struct {
		took time.Duration
		got  []byte
		err  error
	}
	results := make(chan result, n)
	for i := 0; i < n; i++ {
		go func() {
			start := time.Now()
			c, code, err := rawUpgrade(h.addr())
			if err != nil || c == nil {
				results <- result{err: fmt.Errorf("upgrade: %d %v", code, err)}
				return
			}
			defer c.conn.Close()
			frame := maskedText([]byte(`{"type":"hello","version":1,"session":"loris","client":"` + strings.Repeat("z", 60) + `"}`))
			stop := make(chan struct{})
			go func() {
				for _, b := range frame {
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
					if _, err := c.conn.Write([]byte{b}); err != nil {
						return
					}
				}
			}()
			c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(c.br)
			close(stop)
			if errors.Is(err, syscall.ECONNRESET) {
				// The server closed with the loris's trickled bytes unread,
				// which resets the connection: that is its end too.
				err = nil
			}
			results <- result{took: time.Since(start), got: got, err: err}
		}()
	}
	// A legitimate client is served while the lorises hold their slots.
	newcomer := h.env.register("patient", "m", "s")
	newcomer.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	for i := 0; i < n; i++ {
		r := <-results
		if r.err != nil {
			t.Fatalf("slow-loris client: %v", r.err)
		}
		if !bytes.Contains(r.got, []byte(protocol.ReasonHandshake.Text())) {
			t.Errorf("slow-loris client read %q, want the %q refusal", r.got, protocol.ReasonHandshake)
		}
		if r.took > 3*time.Second {
			t.Errorf("slow-loris connection lasted %v with a 500ms handshake timeout", r.took)
		}
	}
}

// goroutinesSettle polls until the number of goroutines is at most limit.
func goroutinesSettle(limit int, within time.Duration) int {
	deadline := time.Now().Add(within)
	for {
		n := runtime.NumGoroutine()
		if n <= limit || time.Now().After(deadline) {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Thousands of connections that upgrade and never say hello: the server
// holds them (within --max-conns-per-ip) until the handshake timeout, stays
// responsive for a legitimate client meanwhile, and its goroutines return
// to the baseline once they are gone.
func attackHalfOpen(t *testing.T, h *hostile) {
	n := 2000
	if testing.Short() || underRace() {
		n = 400 // the race detector allows 8 128 live goroutines
	}
	base := runtime.NumGoroutine()
	conns := make([]*wsRaw, n)
	var failed atomic.Int32
	var wg sync.WaitGroup
	start := time.Now()
	next := atomic.Int64{}
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, _, err := rawUpgrade(h.addr())
				if err != nil || c == nil {
					failed.Add(1)
					continue
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	opened := time.Since(start)
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d upgrades failed", f, n)
	}
	t.Logf("%d half-open connections in %v; goroutines %d before, %d with them open", n, opened.Round(time.Millisecond), base, runtime.NumGoroutine())
	// The server answers a legitimate client promptly meanwhile.
	t0 := time.Now()
	c := h.env.register("legit", "m", "s")
	c.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	h.alice.ok(&protocol.Frame{Type: protocol.TPing})
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("a legitimate register, join and ping took %v beside %d half-open connections", d, n)
	}
	// The server cuts each one at the handshake timeout.
	var cut atomic.Int32
	for _, c := range conns {
		wg.Add(1)
		go func(c *wsRaw) {
			defer wg.Done()
			defer c.conn.Close()
			c.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
			var got []byte
			buf := make([]byte, 512)
			for !bytes.Contains(got, []byte(protocol.ReasonHandshake.Text())) {
				n, err := c.br.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					return
				}
			}
			cut.Add(1)
		}(c)
	}
	wg.Wait()
	if int(cut.Load()) != n {
		t.Errorf("%d of %d half-open connections were told %q", cut.Load(), n, protocol.ReasonHandshake)
	}
	// 20 goroutines of slack for timers, the HTTP server's idle
	// connections and the runtime.
	if got := goroutinesSettle(base+20, 10*time.Second); got > base+20 {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before, %d after the half-open connections closed\n%s", base, got, buf[:runtime.Stack(buf, true)])
	}
}

// ---- sizes and encodings ----

// dialWS opens a plain coder/websocket connection with a big read limit.
func (h *hostile) dialWS(t *testing.T) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, h.env.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(64 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// closeStatus reads until the connection ends and returns its close status.
func closeStatus(c *websocket.Conn) websocket.StatusCode {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

func attackOversizedPreAuth(t *testing.T, h *hostile) {
	c := h.dialWS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go c.Write(ctx, websocket.MessageText, bytes.Repeat([]byte(" "), protocol.MaxFramePreAuth+1))
	if st := closeStatus(c); st != websocket.StatusMessageTooBig {
		t.Fatalf("close status %d, want %d (message too big)", st, websocket.StatusMessageTooBig)
	}
}

func attackOversizedPostAuth(t *testing.T, h *hostile) {
	// mallory's raw connection, authenticated by hand so that the read
	// limit is ours.
	c := h.dialWS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	write := func(f *protocol.Frame) { c.Write(ctx, websocket.MessageText, protocol.MustEncode(f)) }
	write(&protocol.Frame{Type: protocol.THello, Version: 1, Session: "big"})
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := protocol.Decode(b)
	write(&protocol.Frame{Type: protocol.TAuth, Pubkey: h.malKey.Public().(ed25519.PublicKey), Signature: protocol.SignAuth(h.malKey, ch.ServerID, ch.Nonce, "big")})
	if _, b, err = c.Read(ctx); err != nil || !bytes.Contains(b, []byte(`"established"`)) {
		t.Fatalf("auth: %s %v", b, err)
	}
	write(&protocol.Frame{Type: protocol.TJoin, ID: "1", Channel: "ops"})
	c.Read(ctx)
	msg := append([]byte(`{"type":"channel_msg","id":"2","channel":"ops","body":"`), bytes.Repeat([]byte("x"), protocol.MaxFramePostAuth)...)
	msg = append(msg, `"}`...)
	go c.Write(ctx, websocket.MessageText, msg)
	if st := closeStatus(c); st != websocket.StatusMessageTooBig {
		t.Fatalf("close status %d, want %d (message too big)", st, websocket.StatusMessageTooBig)
	}
	for deadline := time.Now().Add(5 * time.Second); slices.Contains(h.alice.ok(&protocol.Frame{Type: protocol.TWho}).Sessions, "mallory/evil/big"); {
		if time.Now().After(deadline) {
			t.Fatal("the session that sent an oversized frame is still present")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func attackOversizedBody(t *testing.T, h *hostile) {
	h.mallory.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	big := strings.Repeat("x", 1025)
	wantErr(t, "oversized post", h.mallory.req(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: &big}), protocol.CodeTooLarge, "limit is 1024")
	wantErr(t, "oversized whisper", h.mallory.req(&protocol.Frame{Type: protocol.TWhisper, Target: "carol/wc/s", Body: &big}), protocol.CodeTooLarge, "limit is 1024")
	sealed := &protocol.Sealed{Ciphertext: make([]byte, 1025), KeyID: "k"}
	wantErr(t, "oversized sealed post", h.mallory.req(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Sealed: sealed}), protocol.CodeTooLarge, "")
	h.mallory.ok(&protocol.Frame{Type: protocol.TPing}) // the session stays
	if n := h.rejected(t, protocol.CodeTooLarge); n != 3 {
		t.Errorf("/metrics counts %d too_large refusals, want 3", n)
	}
}

func attackInvalidUTF8(t *testing.T, h *hostile) {
	h.mallory.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	for _, raw := range []string{
		"{\"type\":\"channel_msg\",\"id\":\"7\",\"channel\":\"ops\",\"body\":\"\xff\xfe\"}",
		"{\"type\":\"join\",\"id\":\"8\",\"channel\":\"op\xc3\"}",
		"{\"type\":\"whisper\",\"id\":\"9\",\"target\":\"carol/wc/s\",\"body\":\"\xed\xa0\x80\"}", // a UTF-16 surrogate
	} {
		h.mallory.sendRaw([]byte(raw))
		wantErr(t, fmt.Sprintf("%q", raw), h.mallory.next(), protocol.CodeMalformed, "UTF-8")
	}
	h.mallory.ok(&protocol.Frame{Type: protocol.TPing})
	// Before authentication it ends the connection.
	c := h.env.dialRaw()
	c.sendRaw([]byte("{\"type\":\"hello\",\"version\":1,\"session\":\"\xff\"}"))
	wantErr(t, "invalid UTF-8 hello", c.waitClosed(), protocol.CodeMalformed, "UTF-8")
}

func nested(depth int) string {
	return strings.Repeat("[", depth) + strings.Repeat("]", depth)
}

func attackDeepJSON(t *testing.T, h *hostile) {
	// Before authentication: as deep as 1 MiB allows.
	c := h.env.dialRaw()
	c.sendRaw([]byte(`{"type":"hello","version":1,"session":"s","x":` + nested(500_000) + `}`))
	wantErr(t, "deep hello", c.waitClosed(), protocol.CodeMalformed, "")
	// After: 8 MiB of nesting, arrays and objects; the session stays.
	h.mallory.sendRaw([]byte(`{"type":"ping","id":"deep","x":` + nested(4_000_000) + `}`))
	wantErr(t, "deep array", h.mallory.next(), protocol.CodeMalformed, "")
	obj := strings.Repeat(`{"a":`, 1_000_000) + "1" + strings.Repeat("}", 1_000_000)
	h.mallory.sendRaw([]byte(`{"type":"who","id":"deeper","channel":` + obj + `}`))
	wantErr(t, "deep object", h.mallory.next(), protocol.CodeMalformed, "")
	h.mallory.ok(&protocol.Frame{Type: protocol.TPing})
}

func attackUnknownTypes(t *testing.T, h *hostile) {
	for _, tc := range []struct {
		raw, text string
		withID    bool // the refusal echoes the id (the frame decoded)
	}{
		{`{"type":"launch","id":"1"}`, "unknown frame type", false},
		{`{"type":"","id":"2"}`, `no "type"`, false},
		{`{"id":"3"}`, `no "type"`, false},
		{`{"type":42,"id":"4"}`, "", false},
		{`{"type":"pong","id":"5"}`, "unexpected pong frame from a client", true},
		{`{"type":"established","id":"6","path":"root/console/s","admin":true,"server_id":"x"}`, "unexpected established frame", true},
		{`{"type":"auth","id":"7","pubkey":"` + base64.StdEncoding.EncodeToString(make([]byte, 32)) + `","signature":"` + base64.StdEncoding.EncodeToString(make([]byte, 64)) + `"}`, "unexpected auth frame", true},
		{`{"type":"error","id":"8","code":"internal","message":"x"}`, "unexpected error frame", true},
		{`[1,2,3]`, "not a JSON object", false},
		{`{"type":"join","id":"9","channel":"ops"`, "invalid JSON", false},
	} {
		h.mallory.sendRaw([]byte(tc.raw))
		f := h.mallory.next()
		wantErr(t, tc.raw, f, protocol.CodeMalformed, tc.text)
		if tc.withID != (f.ID != "") {
			t.Errorf("%s: refusal id %q", tc.raw, f.ID)
		}
	}
	wantErr(t, "list_users by a non-admin", h.mallory.req(&protocol.Frame{Type: protocol.TListUsers}), protocol.CodeUnauthorized, "server admin role required")
	// Before authentication an unknown type ends the connection.
	c := h.env.dialRaw()
	c.sendRaw([]byte(`{"type":"launch"}`))
	wantErr(t, "unknown type before auth", c.waitClosed(), protocol.CodeMalformed, "unknown frame type")
}

// ---- private channels ----

// probeRequests are every request that names a channel, for a channel
// name ch.
func probeRequests(ch string) []*protocol.Frame {
	return []*protocol.Frame{
		{Type: protocol.TJoin, Channel: ch},
		{Type: protocol.TJoin, Channel: ch, Token: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		{Type: protocol.TWho, Channel: ch},
		{Type: protocol.TReadSince, Channel: ch},
		{Type: protocol.TReadSince, Channel: ch, SinceMs: new(int64)},
		{Type: protocol.TChannelMsg, Channel: ch, Body: body("hello?")},
		{Type: protocol.TChannelMsg, Channel: ch, Sealed: &protocol.Sealed{Ciphertext: []byte{1}}},
		{Type: protocol.TDeleteChannel, Channel: ch},
		{Type: protocol.TRenameChannel, Channel: ch, NewName: "renamed-by-mallory"},
		{Type: protocol.TSetVisibility, Channel: ch, Visibility: "public"},
		{Type: protocol.TACLAdd, Channel: ch, User: "mallory"},
		{Type: protocol.TACLRemove, Channel: ch, User: "carol"},
		{Type: protocol.TACLList, Channel: ch},
		{Type: protocol.TInviteCreate, Channel: ch},
		{Type: protocol.TInviteList, Channel: ch},
		{Type: protocol.TKick, Channel: ch, Target: "carol"},
		{Type: protocol.TKick, Channel: ch, Target: "carol/wc/s"},
		{Type: protocol.TBan, Channel: ch, User: "carol"},
		{Type: protocol.TUnban, Channel: ch, User: "carol"},
		{Type: protocol.TBanList, Channel: ch},
		{Type: protocol.TAudit, Channel: ch},
		{Type: protocol.TLeave, Channel: ch},
	}
}

// normalized renders a reply with the channel name replaced, for
// comparing the replies about two names.
func normalized(f *protocol.Frame, name string) string {
	g := *f
	g.ID = ""
	b, _ := json.Marshal(&g)
	return strings.ReplaceAll(string(b), name, "NAME")
}

func attackProbeText(t *testing.T, h *hostile) {
	seq := lastSeq(h.env.srv)
	hidden, missing := probeRequests("secret"), probeRequests("nosuch")
	for i := range hidden {
		a := h.mallory.req(hidden[i])
		b := h.mallory.req(missing[i])
		if an, bn := normalized(a, "secret"), normalized(b, "nosuch"); an != bn {
			t.Errorf("%s: the private channel answers %s, a missing one %s", hidden[i].Type, an, bn)
		}
		if a.Type != protocol.TError && a.Type != protocol.TAck && a.Type != protocol.TAuditEvents {
			t.Errorf("%s on a private channel: %+v", hidden[i].Type, a)
		}
	}
	if l := h.mallory.ok(&protocol.Frame{Type: protocol.TListChannels}); slices.ContainsFunc(l.Channels, func(c protocol.ChannelInfo) bool { return c.Name == "secret" }) {
		t.Errorf("mallory lists %+v", l.Channels)
	}
	if got := lastSeq(h.env.srv); got != seq {
		t.Errorf("probing wrote %d events", got-seq)
	}
	// Creating a channel of that name is the one place the name shows:
	// names are unique (docs/SECURITY.md, residual risks).
	wantErr(t, "create over a private name", h.mallory.req(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "secret"}), protocol.CodeConflict, "")
}

// lastSeq reads the sequence number of the newest event.
func lastSeq(s *Server) uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.state.LastSeq()
}

// median returns the median of ds.
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func attackProbeTiming(t *testing.T, h *hostile) {
	const n = 200
	for _, probe := range []struct {
		name string
		req  func(ch string) *protocol.Frame
	}{
		{"join", func(ch string) *protocol.Frame { return &protocol.Frame{Type: protocol.TJoin, Channel: ch} }},
		{"join with token", func(ch string) *protocol.Frame {
			return &protocol.Frame{Type: protocol.TJoin, Channel: ch, Token: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}
		}},
		{"acl_add (through the writer)", func(ch string) *protocol.Frame {
			return &protocol.Frame{Type: protocol.TACLAdd, Channel: ch, User: "mallory"}
		}},
		{"read_since", func(ch string) *protocol.Frame { return &protocol.Frame{Type: protocol.TReadSince, Channel: ch} }},
	} {
		var hid, mis []time.Duration
		for i := 0; i < n; i++ {
			for _, ch := range []string{"secret", fmt.Sprintf("nosuch%d", i)} {
				t0 := time.Now()
				r := h.mallory.req(probe.req(ch))
				d := time.Since(t0)
				if r.Type != protocol.TError {
					t.Fatalf("%s %s: %+v", probe.name, ch, r)
				}
				if ch == "secret" {
					hid = append(hid, d)
				} else {
					mis = append(mis, d)
				}
			}
		}
		mh, mm := median(hid), median(mis)
		lo, hi := min(mh, mm), max(mh, mm)
		t.Logf("%s: median %v for the private channel, %v for missing ones (%d probes each)", probe.name, mh, mm, n)
		// Generous: loopback noise on a loaded 2-core machine is far
		// larger than any difference in the server's work.
		if hi-lo > time.Millisecond && hi > 3*lo {
			t.Errorf("%s: medians differ grossly: %v (private) vs %v (missing)", probe.name, mh, mm)
		}
	}
}

func randomToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func attackBruteForceInvites(t *testing.T, h *hostile) {
	one := int64(1)
	real := h.alice.ok(&protocol.Frame{Type: protocol.TInviteCreate, Channel: "secret", Uses: &one}).Token
	h.alice.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "other", Visibility: "private"})
	otherTok := h.alice.ok(&protocol.Frame{Type: protocol.TInviteCreate, Channel: "other"}).Token
	expiring := int64(1)
	expTok := h.alice.ok(&protocol.Frame{Type: protocol.TInviteCreate, Channel: "secret", ExpiresInSecs: &expiring}).Token
	spentTok := h.alice.ok(&protocol.Frame{Type: protocol.TInviteCreate, Channel: "secret", Uses: &one}).Token
	h.alice.ok(&protocol.Frame{Type: protocol.TInviteRevoke, Token: spentTok})
	seq := lastSeq(h.env.srv)
	time.Sleep(1100 * time.Millisecond) // expTok expires

	tokens := []string{otherTok, expTok, spentTok, real[:len(real)-1], real + "x", strings.ToUpper(real), " " + real}
	n := 500
	if testing.Short() || underRace() {
		n = 100
	}
	for i := 0; i < n; i++ {
		tokens = append(tokens, randomToken())
	}
	want := ""
	for _, tok := range tokens {
		r := h.mallory.req(&protocol.Frame{Type: protocol.TJoin, Channel: "secret", Token: tok})
		got := normalized(r, tok)
		if want == "" {
			want = got
			wantErr(t, "a wrong token", r, protocol.CodeNotFound, `no such channel "secret"`)
		} else if got != want {
			t.Fatalf("token %q answered %s, others %s", tok, got, want)
		}
	}
	if got := lastSeq(h.env.srv); got != seq {
		t.Errorf("%d wrong tokens wrote %d events", len(tokens), got-seq)
	}
	invs := h.alice.ok(&protocol.Frame{Type: protocol.TInviteList, Channel: "secret"}).Invites
	if !slices.ContainsFunc(invs, func(i protocol.InviteInfo) bool { return i.Token == real && i.Uses != nil && *i.Uses == 1 }) {
		t.Errorf("the real invite changed: %+v", invs)
	}
	if who := h.alice.ok(&protocol.Frame{Type: protocol.TWho, Channel: "secret"}); slices.Contains(who.Sessions, "mallory/evil/s") {
		t.Fatal("mallory is in secret")
	}
	// The rightful token still works, once.
	h.mallory.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "secret", Token: real})
	h.alice.ok(&protocol.Frame{Type: protocol.TACLRemove, Channel: "secret", User: "mallory"})
	h.mallory.nextOfType(protocol.TUnsubscribed)
}

// ---- names ----

func attackReRegisterPinned(t *testing.T, h *hostile) {
	_, f := h.env.handshake(newKey(t), "s", &protocol.Frame{Username: "root", Machine: "m"})
	wantErr(t, "register a pinned admin name", f, protocol.CodeUnauthorized, `username "root" is reserved for a different key`)
	_, f = h.env.handshake(newKey(t), "s", &protocol.Frame{Username: "alice", Machine: "wa"})
	wantErr(t, "register a taken name", f, protocol.CodeConflict, `username "alice" is already taken`)
	// Enrolling a key someone else holds, under one's own name.
	_, f = h.env.handshake(h.rootKey, "s", &protocol.Frame{Username: "mallory2", Machine: "m"})
	wantErr(t, "register another user's key", f, protocol.CodeConflict, "already enrolled")
	wantErr(t, "machine_add of root's key", h.mallory.req(&protocol.Frame{Type: protocol.TMachineAdd, Machine: "stolen", Pubkey: pubOf(h.rootKey)}), protocol.CodeConflict, "already enrolled")
	// user_add is for server admins only.
	wantErr(t, "user_add by a non-admin", h.mallory.req(&protocol.Frame{Type: protocol.TUserAdd, User: "root2", Machine: "m", Pubkey: pubOf(newKey(t))}), protocol.CodeUnauthorized, "server admin role required")
	// root's own key still logs in as an admin.
	if r := h.env.login(h.rootKey, "again"); !r.admin {
		t.Fatal("root lost its admin role")
	}
	users := h.root.ok(&protocol.Frame{Type: protocol.TListUsers}).Users
	slices.Sort(users)
	if !slices.Equal(users, []string{"alice", "carol", "mallory", "root"}) {
		t.Fatalf("users = %v", users)
	}
}

func attackReRegisterRemoved(t *testing.T, h *hostile) {
	oldKey := newKey(t)
	bob, f := h.env.handshake(oldKey, "s", &protocol.Frame{Username: "bob", Machine: "old"})
	if f.Type != protocol.TEstablished {
		t.Fatalf("bob: %+v", f)
	}
	bob.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "bobs", Visibility: "private"})
	h.alice.ok(&protocol.Frame{Type: protocol.TACLAdd, Channel: "secret", User: "bob"})
	bob.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "secret"})
	bob.ok(&protocol.Frame{Type: protocol.TMachineAdd, Machine: "second", Pubkey: pubOf(newKey(t))})
	h.alice.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "quiet"})
	h.alice.ok(&protocol.Frame{Type: protocol.TBan, Channel: "quiet", User: "bob"})
	h.root.ok(&protocol.Frame{Type: protocol.TUserRemove, User: "bob"})
	if last := bob.waitClosed(); last == nil || protocol.Reason(last.Reason) != protocol.ReasonUserRemoved {
		t.Fatalf("bob's session ended with %+v", last)
	}

	nb, f := h.env.handshake(newKey(t), "s", &protocol.Frame{Username: "bob", Machine: "new"})
	if f.Type != protocol.TEstablished || f.Path != "bob/new/s" || *f.Admin {
		t.Fatalf("re-registering a removed name: %+v, want an accepted plain user", f)
	}
	if ms := nb.ok(&protocol.Frame{Type: protocol.TListMachines}).Machines; len(ms) != 1 || ms[0].Name != "new" {
		t.Errorf("the new bob's machines = %+v, want only his own", ms)
	}
	wantErr(t, "join the old bob's private channel", nb.req(&protocol.Frame{Type: protocol.TJoin, Channel: "secret"}), protocol.CodeNotFound, "no such channel")
	if l := nb.ok(&protocol.Frame{Type: protocol.TListChannels}); slices.ContainsFunc(l.Channels, func(c protocol.ChannelInfo) bool {
		return c.Name == "bobs" || c.Name == "secret"
	}) {
		t.Errorf("the new bob lists %+v", l.Channels)
	}
	wantErr(t, "administer the old bob's channel", nb.req(&protocol.Frame{Type: protocol.TDeleteChannel, Channel: "bobs"}), protocol.CodeNotFound, "no such channel")
	if acl := h.alice.ok(&protocol.Frame{Type: protocol.TACLList, Channel: "secret"}); slices.Contains(acl.Users, "bob") {
		t.Errorf("secret's ACL still names bob: %v", acl.Users)
	}
	_, f = h.env.handshake(oldKey, "s", nil)
	wantErr(t, "the old bob's key", f, protocol.CodeUnauthorized, "unknown machine key")
	// Bans naming bob stay (docs/PROTOCOL.md, user_remove): a restriction
	// outlives the name, a right does not.
	wantErr(t, "join where the old bob was banned", nb.req(&protocol.Frame{Type: protocol.TJoin, Channel: "quiet"}), protocol.CodeUnauthorized, "banned")
	// The new bob may create a channel named like the deleted one: it
	// starts empty.
	nb.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "bobs"})
	nb.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "bobs"})
	if p := nb.ok(&protocol.Frame{Type: protocol.TReadSince, Channel: "bobs"}); len(p.Messages) != 0 {
		t.Errorf("the new bobs has history: %+v", p.Messages)
	}
}

// ---- whispers ----

func attackWhisperProbe(t *testing.T, h *hostile) {
	var want string
	for _, target := range []string{
		"nobody/m/s",       // no such user
		"alice/wa/offline", // a user and machine that exist, no such session
		"alice/nope/s",     // a machine that does not exist
		"carol/wc/t",       // a neighbour of a live session
	} {
		r := h.mallory.req(&protocol.Frame{Type: protocol.TWhisper, Target: target, Body: body("psst")})
		wantErr(t, "whisper to "+target, r, protocol.CodeNotFound, "")
		got := normalized(r, target)
		if want == "" {
			want = got
		} else if got != want {
			t.Errorf("whisper to %s answered %s, the first one %s", target, got, want)
		}
	}
}

// ---- floods ----

// A session that never reads is dropped once its queue overflows; the
// sender and the other subscribers do not notice.
func attackNeverReads(t *testing.T, h *hostile) {
	h.mallory.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	h.alice.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	locked := make(chan struct{})
	go func() { h.mallory.readMu.Lock(); close(locked) }()
	big := strings.Repeat("y", 256<<10)
	sent := 0
	deadline := time.Now().Add(30 * time.Second)
	for h.env.srv.hub.lookup("mallory/evil/s") != nil {
		if sent == 400 || time.Now().After(deadline) {
			t.Fatalf("a client that never reads is still present after %d posts of 256 KiB", sent)
		}
		h.alice.ok(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: &big})
		sent++
	}
	for i := 0; i < sent; i++ {
		if d := h.carol.nextOfType(protocol.TChannelMsg); d.From != "alice/wa/s" {
			t.Fatalf("carol got %+v", d)
		}
	}
	t.Logf("dropped after %d posts of 256 KiB; carol received all %d", sent, sent)
	<-locked
	h.mallory.readMu.Unlock()
	select {
	case <-h.mallory.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the dropped session's connection was never closed")
	}
}

func attackPostFlood(t *testing.T, h *hostile) {
	h.mallory.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	const n = 60
	for i := 0; i < n; i++ {
		h.mallory.sendFrame(&protocol.Frame{Type: protocol.TChannelMsg, ID: fmt.Sprintf("f%d", i), Channel: "ops", Body: body("spam")})
	}
	// Whispers share the budget.
	h.mallory.sendFrame(&protocol.Frame{Type: protocol.TWhisper, ID: "w", Target: "carol/wc/s", Body: body("spam")})
	acked, limited := 0, 0
	for i := 0; i <= n; i++ {
		f := h.mallory.next()
		switch {
		case f.ID == "w":
			wantErr(t, "whisper in a flood", f, protocol.CodeRateLimited, "retry after")
		case f.Type == protocol.TAck:
			acked++
		case f.Type == protocol.TError && f.Code == protocol.CodeRateLimited && strings.Contains(f.Message, "retry after"):
			limited++
		default:
			t.Fatalf("flood reply %+v", f)
		}
	}
	if limited == 0 || acked < 5 || acked > 15 {
		t.Fatalf("%d acked and %d rate_limited of %d posts at 5/s burst 5", acked, limited, n)
	}
	t.Logf("%d posts acknowledged, %d refused with rate_limited", acked, limited)
	if n := h.rejected(t, protocol.CodeRateLimited); n < limited+1 {
		t.Errorf("/metrics counts %d rate_limited refusals, want at least %d", n, limited+1)
	}
	for i := 0; i < acked; i++ {
		h.carolSees = append(h.carolSees, "channel_msg:ops:mallory/evil/s")
	}
	h.mallory.ok(&protocol.Frame{Type: protocol.TPing}) // the session stays
	// alice's budget is her own.
	h.alice.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	h.alice.ok(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: body("still here")})
	h.carolSees = append(h.carolSees, "channel_msg:ops:alice/wa/s")
}

func attackAdminFlood(t *testing.T, h *hostile) {
	// mallory's registration spent one of his six tokens.
	limited := 0
	for i := 0; i < 10; i++ {
		r := h.mallory.req(&protocol.Frame{Type: protocol.TCreateChannel, Channel: fmt.Sprintf("flood%d", i)})
		if r.Type == protocol.TError {
			wantErr(t, "admin flood", r, protocol.CodeRateLimited, "retry after")
			limited++
		}
	}
	if limited < 3 {
		t.Fatalf("%d of 10 channel creations refused at 1/s burst 6", limited)
	}
	if n := h.rejected(t, protocol.CodeRateLimited); n < limited {
		t.Errorf("/metrics counts %d rate_limited refusals, want at least %d", n, limited)
	}
	// Joins are not admin events; the session stays.
	h.mallory.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	h.mallory.ok(&protocol.Frame{Type: protocol.TPing})
}

func attackConnFlood(t *testing.T, h *hostile) {
	// Four sessions are already open from this address.
	var open []*wsRaw
	defer func() {
		for _, c := range open {
			c.conn.Close()
		}
	}()
	refused := 0
	for i := 0; i < 50; i++ {
		c, code, err := rawUpgrade(h.addr())
		switch {
		case err != nil:
			t.Fatal(err)
		case c != nil:
			open = append(open, c)
		case code == http.StatusTooManyRequests:
			refused++
		default:
			t.Fatalf("upgrade answered %d", code)
		}
	}
	if len(open) != 36 || refused != 14 {
		t.Fatalf("%d admitted and %d refused beside 4 sessions with a limit of 40", len(open), refused)
	}
	if n := h.rejected(t, protocol.CodeRateLimited); n != refused {
		t.Errorf("/metrics counts %d rate_limited refusals, want %d", n, refused)
	}
	for _, c := range open {
		c.conn.Close()
	}
	open = nil
	// Slots free up as the connections end.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, code, err := rawUpgrade(h.addr())
		if err == nil && c != nil {
			c.conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot freed: %d %v", code, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
