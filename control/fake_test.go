package control

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/conclave/conclave/protocol"
)

// fakeServer speaks the server side of the handshake on 127.0.0.1, so that
// control can be tested without the real server. After the handshake it
// hands the session to serve (nil: answer requests with defaultServe).
type fakeServer struct {
	t        testing.TB
	id       string // the server id in the challenge
	headerID string // the id in the 101 header; "" = id
	admin    bool

	// before, if set, runs instead of the whole handshake.
	before func(ctx context.Context, s *fakeSession)
	// serve runs after a successful handshake.
	serve func(ctx context.Context, s *fakeSession)
	// established, if set, replaces the established frame sent.
	established func(s *fakeSession) []*protocol.Frame

	url string

	mu    sync.Mutex
	known map[string]string // pubkey → user/machine
	got   []*protocol.Frame // every frame received, in order
}

type fakeSession struct {
	f     *fakeServer
	ws    *websocket.Conn
	hello *protocol.Frame
	path  string
}

func newFake(t testing.TB) *fakeServer {
	t.Helper()
	f := &fakeServer{t: t, id: "srv-test-1", known: map[string]string{}}
	ts := httptest.NewServer(http.HandlerFunc(f.handle))
	t.Cleanup(ts.Close)
	f.url = "ws" + strings.TrimPrefix(ts.URL, "http")
	return f
}

// newFakeTLS is newFake serving wss:// with httptest's self-signed
// certificate, which it returns.
func newFakeTLS(t *testing.T) (*fakeServer, *x509.Certificate) {
	t.Helper()
	f := &fakeServer{t: t, id: "srv-test-tls", known: map[string]string{}}
	ts := httptest.NewTLSServer(http.HandlerFunc(f.handle))
	t.Cleanup(ts.Close)
	f.url = "wss" + strings.TrimPrefix(ts.URL, "https")
	return f, ts.Certificate()
}

// enroll makes pub a known machine key of user/machine.
func (f *fakeServer) enroll(pub ed25519.PublicKey, userMachine string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.known[string(pub)] = userMachine
}

// received returns the types of every frame the fake has received.
func (f *fakeServer) received() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, fr := range f.got {
		out = append(out, fr.Type)
	}
	return out
}

func (f *fakeServer) handle(w http.ResponseWriter, r *http.Request) {
	hid := f.headerID
	if hid == "" {
		hid = f.id
	}
	w.Header().Set(ServerIDHeader, hid)
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{protocol.Subprotocol}})
	if err != nil {
		return
	}
	defer ws.CloseNow()
	ws.SetReadLimit(readLimit)
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	s := &fakeSession{f: f, ws: ws}
	if f.before != nil {
		f.before(ctx, s)
		return
	}
	if !s.handshake(ctx) {
		return
	}
	if f.serve != nil {
		f.serve(ctx, s)
	} else {
		s.defaultServe(ctx)
	}
}

// read returns the next frame from the client.
func (s *fakeSession) read(ctx context.Context) (*protocol.Frame, error) {
	_, data, err := s.ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	fr, err := protocol.Decode(data)
	if err != nil {
		return nil, err
	}
	s.f.mu.Lock()
	s.f.got = append(s.f.got, fr)
	s.f.mu.Unlock()
	return fr, nil
}

// send writes frames as one message, JSON Lines.
func (s *fakeSession) send(ctx context.Context, frames ...*protocol.Frame) error {
	var lines [][]byte
	for _, fr := range frames {
		lines = append(lines, protocol.MustEncode(fr))
	}
	return s.ws.Write(ctx, websocket.MessageText, bytes.Join(lines, []byte("\n")))
}

func (s *fakeSession) fail(ctx context.Context, code protocol.Code, msg string) {
	_ = s.send(ctx, &protocol.Frame{Type: protocol.TError, Code: code, Message: msg})
	s.ws.Close(websocket.StatusPolicyViolation, "handshake failed")
}

// handshake runs the server side of hello → challenge → [register] auth →
// established, checking the signature with protocol.VerifyAuth.
func (s *fakeSession) handshake(ctx context.Context) bool {
	f := s.f
	hello, err := s.read(ctx)
	if err != nil {
		return false
	}
	if hello.Type != protocol.THello {
		s.fail(ctx, protocol.CodeMalformed, "expected hello")
		return false
	}
	if err := hello.Validate(); err != nil {
		var pe *protocol.Error
		errors.As(err, &pe)
		s.fail(ctx, pe.Code, pe.Message)
		return false
	}
	s.hello = hello
	nonce := make([]byte, protocol.NonceSize)
	rand.Read(nonce)
	if err := s.send(ctx, &protocol.Frame{Type: protocol.TChallenge, Nonce: nonce, ServerID: f.id}); err != nil {
		return false
	}
	next, err := s.read(ctx)
	if err != nil {
		return false
	}
	var reg *protocol.Frame
	if next.Type == protocol.TRegister {
		reg = next
		if next, err = s.read(ctx); err != nil {
			return false
		}
	}
	if next.Type != protocol.TAuth {
		s.fail(ctx, protocol.CodeMalformed, "expected register or auth")
		return false
	}
	if !protocol.VerifyAuth(next.Pubkey, f.id, nonce, hello.Session, next.Signature) {
		s.fail(ctx, protocol.CodeUnauthorized, "signature verification failed")
		return false
	}
	f.mu.Lock()
	um, ok := f.known[string(next.Pubkey)]
	if reg != nil {
		if !bytes.Equal(reg.Pubkey, next.Pubkey) {
			f.mu.Unlock()
			s.fail(ctx, protocol.CodeUnauthorized, "auth key does not match the registered key")
			return false
		}
		um, ok = reg.Username+"/"+reg.Machine, true
		f.known[string(next.Pubkey)] = um
	}
	f.mu.Unlock()
	if !ok {
		s.fail(ctx, protocol.CodeUnauthorized, "unknown machine key")
		return false
	}
	s.path = um + "/" + hello.Session
	est := []*protocol.Frame{{Type: protocol.TEstablished, Path: s.path, Admin: &f.admin, ServerID: f.id}}
	if f.established != nil {
		est = f.established(s)
	}
	return s.send(ctx, est...) == nil
}

// defaultServe answers ping, who and channel_msg until the client leaves.
func (s *fakeSession) defaultServe(ctx context.Context) {
	var seq uint64
	for {
		fr, err := s.read(ctx)
		if err != nil {
			return
		}
		var reply *protocol.Frame
		switch fr.Type {
		case protocol.TPing:
			reply = &protocol.Frame{Type: protocol.TPong}
		case protocol.TWho:
			reply = &protocol.Frame{Type: protocol.TPresence, Channel: fr.Channel, Sessions: []string{s.path}}
		case protocol.TChannelMsg:
			seq++
			reply = &protocol.Frame{Type: protocol.TAck, Seq: seq}
		default:
			reply = &protocol.Frame{Type: protocol.TError, Code: protocol.CodeNotFound, Message: "no such thing"}
		}
		reply.ID = fr.ID
		if s.send(ctx, reply) != nil {
			return
		}
	}
}

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// dialFake logs in to f as alice/wa with a fresh enrolled key.
func dialFake(t testing.TB, f *fakeServer, mod func(*Options)) *Conn {
	t.Helper()
	key := newKey(t)
	f.enroll(key.Public().(ed25519.PublicKey), "alice/wa")
	o := &Options{URL: f.url, Key: key, Session: "s1", PinnedServerID: f.id, DialTimeout: 5 * time.Second}
	if mod != nil {
		mod(o)
	}
	c, err := Dial(context.Background(), o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
