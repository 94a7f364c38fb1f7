package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/conclave/conclave/protocol"
)

func TestHTTPEndpoints(t *testing.T) {
	env := newTestEnv(t, Config{})
	get := func(path string) (int, string, http.Header) {
		resp, err := http.Get(env.ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	if code, b, _ := get("/health"); code != 200 || b != "ok" {
		t.Errorf("/health = %d %q, want 200 ok", code, b)
	}
	if code, _, _ := get("/"); code != http.StatusUpgradeRequired {
		t.Errorf("GET / = %d, want 426", code)
	}
	if code, _, _ := get("/nope"); code != 404 {
		t.Errorf("GET /nope = %d, want 404", code)
	}
	if code, b, _ := get("/metrics"); code != 200 || !strings.Contains(b, "conclave_sessions") {
		t.Errorf("/metrics = %d %q", code, b)
	}
	_, resp, err := websocket.Dial(context.Background(), env.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("X-Conclave-Server-Id"); got == "" || got != env.srv.ServerID() {
		t.Errorf("x-conclave-server-id = %q, want %q", got, env.srv.ServerID())
	}
}

func TestHealthIsUnavailableUntilRecovered(t *testing.T) {
	srv, err := New(Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ts := newHTTPServer(t, srv)
	resp, err := http.Get(ts + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/health before recovery = %d, want 503", resp.StatusCode)
	}
	if err := srv.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	resp, err = http.Get(ts + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/health after recovery = %d, want 200", resp.StatusCode)
	}
}

func TestRegisterAndLogin(t *testing.T) {
	env := newTestEnv(t, Config{})
	key := newKey(t)
	c, f := env.handshake(key, "razel", &protocol.Frame{Username: "aaron", Machine: "workstation"})
	if f.Type != protocol.TEstablished || f.Path != "aaron/workstation/razel" || f.ServerID != env.srv.ServerID() {
		t.Fatalf("established = %+v", f)
	}
	if c.admin {
		t.Error("aaron is admin without being on the allowlist")
	}
	c2 := env.login(key, "dotagent")
	if c2.path != "aaron/workstation/dotagent" {
		t.Fatalf("login path = %q", c2.path)
	}
}

func TestHandshakeRefusals(t *testing.T) {
	env := newTestEnv(t, Config{Admins: []Admin{{User: "root", Key: newKey(t).Public().(ed25519.PublicKey)}}})
	env.register("aaron", "wa", "s")
	taken := newKey(t)
	env.handshake(taken, "s", &protocol.Frame{Username: "keyowner", Machine: "m"})

	tests := []struct {
		name string
		run  func() *protocol.Frame
		code protocol.Code
		text string
	}{
		{"unknown key", func() *protocol.Frame { _, f := env.handshake(newKey(t), "s", nil); return f }, protocol.CodeUnauthorized, "unknown machine key"},
		{"duplicate username", func() *protocol.Frame {
			_, f := env.handshake(newKey(t), "s", &protocol.Frame{Username: "aaron", Machine: "m"})
			return f
		}, protocol.CodeConflict, "already taken"},
		{"key already enrolled", func() *protocol.Frame {
			_, f := env.handshake(taken, "s", &protocol.Frame{Username: "other", Machine: "m"})
			return f
		}, protocol.CodeConflict, "already enrolled"},
		{"pinned admin name", func() *protocol.Frame {
			_, f := env.handshake(newKey(t), "s", &protocol.Frame{Username: "root", Machine: "m"})
			return f
		}, protocol.CodeUnauthorized, "reserved"},
		{"username with slash", func() *protocol.Frame {
			_, f := env.handshake(newKey(t), "s", &protocol.Frame{Username: "aa/ron", Machine: "m"})
			return f
		}, protocol.CodeMalformed, "username"},
		{"machine too long", func() *protocol.Frame {
			_, f := env.handshake(newKey(t), "s", &protocol.Frame{Username: "x", Machine: strings.Repeat("m", 65)})
			return f
		}, protocol.CodeMalformed, "machine"},
		{"control character", func() *protocol.Frame {
			_, f := env.handshake(newKey(t), "s", &protocol.Frame{Username: "x\x07", Machine: "m"})
			return f
		}, protocol.CodeMalformed, "control"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.run()
			if f.Type != protocol.TError || f.Code != tt.code || !strings.Contains(f.Message, tt.text) {
				t.Fatalf("got %+v, want %s containing %q", f, tt.code, tt.text)
			}
		})
	}
}

// rawHandshake drives a handshake by hand to send wrong signatures.
func rawHandshake(t *testing.T, env *testEnv, session string, build func(ch *protocol.Frame) []*protocol.Frame) *protocol.Frame {
	t.Helper()
	c := env.dialRaw()
	c.sendFrame(&protocol.Frame{Type: protocol.THello, Version: 1, Session: session})
	ch := c.next()
	for _, f := range build(ch) {
		c.sendFrame(f)
	}
	f := c.next()
	c.waitClosed()
	return f
}

func TestSignatureMustMatchServerNonceAndSession(t *testing.T) {
	env := newTestEnv(t, Config{})
	key := newKey(t)
	env.register("aaron", "wa", "s")
	env.handshake(key, "main", &protocol.Frame{Username: "bob", Machine: "m"})
	pub := key.Public().(ed25519.PublicKey)
	cases := map[string]func(ch *protocol.Frame) []byte{
		"another server": func(ch *protocol.Frame) []byte { return protocol.SignAuth(key, "other-server", ch.Nonce, "main") },
		"another nonce": func(ch *protocol.Frame) []byte {
			return protocol.SignAuth(key, ch.ServerID, bytes.Repeat([]byte{1}, 32), "main")
		},
		"another session": func(ch *protocol.Frame) []byte { return protocol.SignAuth(key, ch.ServerID, ch.Nonce, "other") },
		"raw nonce":       func(ch *protocol.Frame) []byte { return ed25519.Sign(key, ch.Nonce) },
	}
	for name, sign := range cases {
		t.Run(name, func(t *testing.T) {
			f := rawHandshake(t, env, "main", func(ch *protocol.Frame) []*protocol.Frame {
				return []*protocol.Frame{{Type: protocol.TAuth, Pubkey: pub, Signature: sign(ch)}}
			})
			if f.Type != protocol.TError || f.Code != protocol.CodeUnauthorized || !strings.Contains(f.Message, "signature") {
				t.Fatalf("got %+v, want unauthorized signature error", f)
			}
		})
	}
}

func TestRegisterProvesPossessionBeforeWriting(t *testing.T) {
	env := newTestEnv(t, Config{})
	k1, k2 := newKey(t), newKey(t)
	// Bad signature: nothing is stored.
	f := rawHandshake(t, env, "s", func(ch *protocol.Frame) []*protocol.Frame {
		pub := k1.Public().(ed25519.PublicKey)
		return []*protocol.Frame{
			{Type: protocol.TRegister, Username: "aaron", Machine: "m", Pubkey: pub},
			{Type: protocol.TAuth, Pubkey: pub, Signature: ed25519.Sign(k1, []byte("wrong"))},
		}
	})
	if f.Code != protocol.CodeUnauthorized {
		t.Fatalf("bad signature register = %+v", f)
	}
	// Key mismatch between register and auth: nothing is stored.
	f = rawHandshake(t, env, "s", func(ch *protocol.Frame) []*protocol.Frame {
		return []*protocol.Frame{
			{Type: protocol.TRegister, Username: "aaron", Machine: "m", Pubkey: k1.Public().(ed25519.PublicKey)},
			{Type: protocol.TAuth, Pubkey: k2.Public().(ed25519.PublicKey), Signature: protocol.SignAuth(k2, ch.ServerID, ch.Nonce, "s")},
		}
	})
	if f.Code != protocol.CodeUnauthorized || !strings.Contains(f.Message, "does not match") {
		t.Fatalf("mismatched register = %+v", f)
	}
	if _, f := env.handshake(k1, "s", nil); f.Code != protocol.CodeUnauthorized {
		t.Fatalf("k1 enrolled after a failed register: %+v", f)
	}
	env.register("aaron", "m", "s") // the name is still free
}

func TestHandshakeProtocolErrors(t *testing.T) {
	env := newTestEnv(t, Config{HandshakeTimeout: 300 * time.Millisecond})
	tests := []struct {
		name string
		send func(c *client)
		code protocol.Code
	}{
		{"wrong version", func(c *client) { c.sendFrame(&protocol.Frame{Type: protocol.THello, Version: 2, Session: "s"}) }, protocol.CodeVersionMismatch},
		{"not json", func(c *client) { c.sendRaw([]byte("hello there")) }, protocol.CodeMalformed},
		{"unknown type", func(c *client) { c.sendRaw([]byte(`{"type":"launch"}`)) }, protocol.CodeMalformed},
		{"request before handshake", func(c *client) { c.sendFrame(&protocol.Frame{Type: protocol.TJoin, ID: "1", Channel: "ops"}) }, protocol.CodeMalformed},
		{"bad handle", func(c *client) { c.sendFrame(&protocol.Frame{Type: protocol.THello, Version: 1, Session: "s/1"}) }, protocol.CodeMalformed},
		{"invalid utf8", func(c *client) { c.sendRaw([]byte("{\"type\":\"hello\",\"session\":\"\xff\"}")) }, protocol.CodeMalformed},
		{"oversized", func(c *client) { c.sendRaw(bytes.Repeat([]byte("x"), protocol.MaxFramePreAuth+1)) }, ""},
		{"silence", func(c *client) {}, protocol.CodeUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := env.dialRaw()
			tt.send(c)
			last := c.waitClosed()
			if tt.code == "" {
				return // the connection was closed; no reply is promised
			}
			if last == nil || last.Code != tt.code {
				t.Fatalf("got %+v, want error %s", last, tt.code)
			}
		})
	}
	// The server is still up for everyone else.
	env.register("after", "m", "s")
}

func TestSupersedeSamePath(t *testing.T) {
	env := newTestEnv(t, Config{})
	key := newKey(t)
	old, _ := env.handshake(key, "razel", &protocol.Frame{Username: "aaron", Machine: "wa"})
	old.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	old.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	newer := env.login(key, "razel")
	last := old.waitClosed()
	if last == nil || !strings.Contains(last.Message, "superseded") {
		t.Fatalf("old session's last frame = %+v, want a superseded error", last)
	}
	who := newer.ok(&protocol.Frame{Type: protocol.TWho})
	if strings.Join(who.Sessions, ",") != "aaron/wa/razel" {
		t.Fatalf("who = %v, want the newcomer only", who.Sessions)
	}
	// The newcomer starts with no subscriptions.
	if p := newer.ok(&protocol.Frame{Type: protocol.TWho, Channel: "ops"}); len(p.Sessions) != 0 {
		t.Fatalf("newcomer inherited subscriptions: %v", p.Sessions)
	}
}

func TestIdleSessionsAreReaped(t *testing.T) {
	env := newTestEnv(t, Config{IdleTimeout: 300 * time.Millisecond, ReapInterval: 50 * time.Millisecond})
	// idle sends nothing and answers no WebSocket ping; listen sends
	// nothing either but answers pings (its WebSocket library does, while
	// it reads); alive sends ping frames.
	key := newKey(t)
	if c, f := env.handshake(key, "enrol", &protocol.Frame{Username: "idle", Machine: "m"}); f.Type != protocol.TEstablished {
		t.Fatalf("register: %+v", f)
	} else {
		c.conn.CloseNow()
	}
	idle := env.rawLogin(t, key, "s")
	listen := env.login(key, "listen")
	alive := env.register("alive", "m", "s")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				alive.sendFrame(&protocol.Frame{Type: protocol.TPing})
			}
		}
	}()
	var last *protocol.Frame
	for f := idle.next(t); f != nil; f = idle.next(t) {
		last = f
	}
	if last == nil || protocol.Reason(last.Reason) != protocol.ReasonIdle {
		t.Fatalf("idle session's last frame = %+v", last)
	}
	if env.srv.hub.lookup("alive/m/s") == nil {
		t.Fatal("a session that pings was reaped")
	}
	if env.srv.hub.lookup("idle/m/listen") == nil {
		t.Fatal("a session that answers WebSocket pings was reaped")
	}
	listen.quiet(0)
}

func TestOversizedFrameAfterAuthDropsOnlyThatSession(t *testing.T) {
	env := newTestEnv(t, Config{})
	a := env.register("aaron", "m", "s")
	b := env.register("bob", "m", "s")
	a.sendRaw(bytes.Repeat([]byte("x"), protocol.MaxFramePostAuth+1))
	a.waitClosed()
	b.ok(&protocol.Frame{Type: protocol.TPing})
}

func newHTTPServer(t *testing.T, srv *Server) string {
	ts := httptestServer(srv)
	t.Cleanup(ts.Close)
	return ts.URL
}
