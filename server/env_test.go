package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/conclave/conclave/protocol"
)

// testEnv is an in-process server on a loopback httptest listener.
type testEnv struct {
	t   testing.TB
	srv *Server
	ts  *httptest.Server
	url string
}

func newTestEnv(t testing.TB, cfg Config) *testEnv {
	t.Helper()
	if cfg.DataDir == "" && !cfg.Ephemeral {
		cfg.DataDir = t.TempDir()
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = -1
	}
	srv, err := Open(cfg)
	if err != nil {
		t.Fatalf("open server: %v", err)
	}
	ts := httptest.NewServer(srv.Handler())
	env := &testEnv{t: t, srv: srv, ts: ts, url: "ws" + strings.TrimPrefix(ts.URL, "http")}
	t.Cleanup(env.close)
	return env
}

func (e *testEnv) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.srv.Shutdown(ctx)
	e.ts.Close()
}

// client is a raw protocol client for tests.
type client struct {
	t      testing.TB
	conn   *websocket.Conn
	key    ed25519.PrivateKey
	path   string
	admin  bool
	frames chan *protocol.Frame
	done   chan struct{}
	nextID atomic.Int64
	// readMu is held shared by the reader around each read; a test that
	// takes it exclusively stops the reading (a client that never reads).
	readMu sync.RWMutex
}

func newKey(t testing.TB) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// dialRaw opens a WebSocket and starts reading frames.
func (e *testEnv) dialRaw() *client {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, e.url, nil)
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	conn.SetReadLimit(protocol.MaxFramePostAuth)
	c := &client{t: e.t, conn: conn, frames: make(chan *protocol.Frame, 4096), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer close(c.frames)
		for {
			c.readMu.RLock()
			_, b, err := conn.Read(context.Background())
			c.readMu.RUnlock()
			if err != nil {
				return
			}
			fs, err := protocol.DecodeMessage(b)
			if err != nil {
				e.t.Errorf("server sent an undecodable message %q: %v", b, err)
				return
			}
			for _, f := range fs {
				c.frames <- f
			}
		}
	}()
	e.t.Cleanup(func() { conn.CloseNow() })
	return c
}

func (c *client) sendFrame(f *protocol.Frame) {
	c.t.Helper()
	b, err := json.Marshal(f)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(b)
}

func (c *client) sendRaw(b []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next returns the next frame, failing the test after timeout.
func (c *client) next() *protocol.Frame {
	c.t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			c.t.Fatalf("connection closed while waiting for a frame")
		}
		return f
	case <-time.After(10 * time.Second):
		c.t.Fatalf("timed out waiting for a frame")
	}
	return nil
}

// nextOfType skips frames until one of type typ.
func (c *client) nextOfType(typ string) *protocol.Frame {
	c.t.Helper()
	for {
		if f := c.next(); f.Type == typ {
			return f
		}
	}
}

// quiet asserts that no frame arrives for d.
func (c *client) quiet(d time.Duration) {
	c.t.Helper()
	select {
	case f, ok := <-c.frames:
		if ok {
			c.t.Fatalf("unexpected frame %+v", f)
		}
	case <-time.After(d):
	}
}

// handshake runs hello/challenge/[register]/auth and returns the first
// reply after auth (established or error).
func (e *testEnv) handshake(key ed25519.PrivateKey, session string, register *protocol.Frame) (*client, *protocol.Frame) {
	e.t.Helper()
	return e.handshakeRole(key, session, "", register)
}

// handshakeRole is handshake with a hello.role.
func (e *testEnv) handshakeRole(key ed25519.PrivateKey, session, role string, register *protocol.Frame) (*client, *protocol.Frame) {
	e.t.Helper()
	return e.handshakeHello(key, &protocol.Frame{Type: protocol.THello, Version: 1, Session: session, Role: role}, register)
}

// handshakeHello is handshake with the hello frame given.
func (e *testEnv) handshakeHello(key ed25519.PrivateKey, hello *protocol.Frame, register *protocol.Frame) (*client, *protocol.Frame) {
	e.t.Helper()
	session := hello.Session
	c := e.dialRaw()
	c.key = key
	c.sendFrame(hello)
	ch := c.next()
	if ch.Type != protocol.TChallenge {
		e.t.Fatalf("want challenge, got %+v", ch)
	}
	if ch.ServerID != e.srv.ServerID() {
		e.t.Fatalf("challenge server id %q, want %q", ch.ServerID, e.srv.ServerID())
	}
	pub := key.Public().(ed25519.PublicKey)
	if register != nil {
		register.Type = protocol.TRegister
		if register.Pubkey == nil {
			register.Pubkey = pub
		}
		c.sendFrame(register)
	}
	// The server may already have refused the register frame and closed.
	b, _ := json.Marshal(&protocol.Frame{Type: protocol.TAuth, Pubkey: pub, Signature: protocol.SignAuth(key, ch.ServerID, ch.Nonce, session)})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	c.conn.Write(ctx, websocket.MessageText, b)
	cancel()
	f := c.next()
	if f.Type == protocol.TEstablished {
		c.path, c.admin = f.Path, *f.Admin
	}
	return c, f
}

// register creates a user with a fresh key and returns its session.
func (e *testEnv) register(user, machine, session string) *client {
	e.t.Helper()
	c, f := e.handshake(newKey(e.t), session, &protocol.Frame{Username: user, Machine: machine})
	if f.Type != protocol.TEstablished {
		e.t.Fatalf("register %s: %+v", user, f)
	}
	return c
}

// login opens another session for an enrolled key.
func (e *testEnv) login(key ed25519.PrivateKey, session string) *client {
	e.t.Helper()
	c, f := e.handshake(key, session, nil)
	if f.Type != protocol.TEstablished {
		e.t.Fatalf("login %s: %+v", session, f)
	}
	return c
}

// req sends a request with a fresh id and returns the reply with that id,
// passing unprompted frames to skip.
func (c *client) req(f *protocol.Frame) *protocol.Frame {
	c.t.Helper()
	f.ID = strconv.FormatInt(c.nextID.Add(1), 10)
	c.sendFrame(f)
	for {
		r := c.next()
		if r.ID == f.ID {
			return r
		}
		if r.ID != "" {
			c.t.Fatalf("reply for id %q while waiting for %q: %+v", r.ID, f.ID, r)
		}
	}
}

// ok sends a request and fails unless the reply is not an error.
func (c *client) ok(f *protocol.Frame) *protocol.Frame {
	c.t.Helper()
	r := c.req(f)
	if r.Type == protocol.TError {
		c.t.Fatalf("%s: error %s: %s", f.Type, r.Code, r.Message)
	}
	return r
}

// fail sends a request and returns the error reply.
func (c *client) fail(f *protocol.Frame, code protocol.Code) *protocol.Frame {
	c.t.Helper()
	r := c.req(f)
	if r.Type != protocol.TError || r.Code != code {
		c.t.Fatalf("%s: got %+v, want error %s", f.Type, r, code)
	}
	return r
}

// waitClosed waits for the server to close the connection and returns
// the last error frame seen.
func (c *client) waitClosed() *protocol.Frame {
	c.t.Helper()
	var last *protocol.Frame
	timeout := time.After(10 * time.Second)
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
			c.t.Fatalf("connection still open")
		}
	}
}

func body(s string) *string { return &s }

func httptestServer(srv *Server) *httptest.Server { return httptest.NewServer(srv.Handler()) }
