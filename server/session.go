package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/conclave/conclave/projections"
	"github.com/conclave/conclave/protocol"
)

// maxCoalesce bounds the frames one WebSocket message carries.
const maxCoalesce = 256

// session is one authenticated connection.
type session struct {
	srv     *Server
	conn    *websocket.Conn
	path    string
	user    string
	machine string
	actor   projections.Actor
	log     *slog.Logger

	out      chan []byte // encoded frames, bounded
	dead     chan struct{}
	killOnce sync.Once
	reason   string // set once, before dead is closed

	lastSeen atomic.Int64 // unix nanos of the last inbound frame
	limiter  *bucket

	// subs is guarded by hub.mu.
	subs map[string]struct{}
}

// enqueue queues an encoded frame without blocking. It reports false when
// the queue is full (the caller drops the session as a slow consumer); a
// dead session silently accepts and discards.
func (sess *session) enqueue(frame []byte) bool {
	select {
	case <-sess.dead:
		return true
	default:
	}
	select {
	case sess.out <- frame:
		return true
	default:
		return false
	}
}

// send encodes and queues a frame, dropping the session if it cannot keep up.
func (sess *session) send(f *protocol.Frame) {
	if !sess.enqueue(protocol.MustEncode(f)) {
		sess.kill(protocol.ReasonSlowConsumer)
	}
}

// kill drops the session: it leaves presence at once, and its writer sends
// a final error frame with reason and closes the connection.
func (sess *session) kill(reason string) {
	sess.killOnce.Do(func() {
		sess.reason = reason
		close(sess.dead)
		sess.srv.hub.detach(sess)
		switch reason {
		case "session closed":
			sess.log.Debug("session ended")
		case protocol.ReasonShutdown:
		default:
			sess.log.Info("session dropped", "reason", reason)
		}
	})
}

func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket") &&
		strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade")
}

// serveWS accepts a WebSocket and runs the connection to its end.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Conclave-Server-Id", s.serverID)
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:       []string{protocol.Subprotocol},
		InsecureSkipVerify: true, // non-browser clients; no cookies or ambient authority exist
	})
	if err != nil {
		s.log.Debug("websocket accept failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	s.metrics.connections.Add(1)
	conn.SetReadLimit(protocol.MaxFramePreAuth)

	sess, herr := s.handshake(conn)
	if herr != nil {
		s.metrics.rejected(herr.Code)
		s.log.Debug("handshake refused", "remote", r.RemoteAddr, "code", herr.Code, "msg", herr.Message)
		if herr != errHandshakeTimeout {
			sendFinal(conn, herr, websocket.StatusPolicyViolation)
		}
		return
	}
	conn.SetReadLimit(protocol.MaxFramePostAuth)
	s.hub.live.Add(1)
	defer s.hub.live.Done()
	s.hub.attach(sess)
	if s.closing.Load() {
		sess.kill(protocol.ReasonShutdown)
	}
	sess.log.Info("session established")
	sess.send(&protocol.Frame{Type: protocol.TEstablished, Path: sess.path, Admin: ptrBool(sess.actor.ServerAdmin), ServerID: s.serverID})

	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		sess.writeLoop()
	}()
	sess.readLoop()
	sess.kill("session closed")
	<-writerDone
	s.metrics.sessions.Add(-1)
}

// errHandshakeTimeout is returned once the timeout has already told the
// client and closed the connection.
var errHandshakeTimeout = protocol.Errorf(protocol.CodeUnauthorized, protocol.ReasonHandshake)

// sendFinal writes one error frame and closes the connection.
func sendFinal(conn *websocket.Conn, e *protocol.Error, status websocket.StatusCode) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	conn.Write(ctx, websocket.MessageText, protocol.MustEncode(protocol.ErrorFrame("", e)))
	cancel()
	conn.Close(status, truncateReason(e.Message))
}

func ptrBool(b bool) *bool { return &b }

// handshake runs hello, challenge, [register,] auth. Nothing durable is
// written before the signature is verified.
func (s *Server) handshake(conn *websocket.Conn) (*session, *protocol.Error) {
	// The timeout tells the client and closes the connection, which ends
	// a pending read. (A read with an expiring context would close the
	// connection before the reason could be sent.)
	var timedOut atomic.Bool
	expire := func(e *protocol.Error, status websocket.StatusCode) func() {
		return func() {
			if timedOut.CompareAndSwap(false, true) {
				sendFinal(conn, e, status)
			}
		}
	}
	timer := time.AfterFunc(s.cfg.HandshakeTimeout, expire(errHandshakeTimeout, websocket.StatusPolicyViolation))
	defer timer.Stop()
	stopWatch := context.AfterFunc(s.stopCtx, expire(protocol.Errorf(protocol.CodeUnauthorized, protocol.ReasonShutdown), websocket.StatusGoingAway))
	defer stopWatch()
	ctx := context.Background()
	read := func() (*protocol.Frame, *protocol.Error) {
		typ, b, err := conn.Read(ctx)
		if err != nil {
			if timedOut.Load() {
				return nil, errHandshakeTimeout
			}
			if errors.Is(err, websocket.ErrMessageTooBig) {
				return nil, protocol.Errorf(protocol.CodeTooLarge, "frame larger than %d bytes before authentication", protocol.MaxFramePreAuth)
			}
			return nil, protocol.Errorf(protocol.CodeMalformed, "connection closed during the handshake")
		}
		if typ != websocket.MessageText {
			return nil, protocol.Errorf(protocol.CodeMalformed, "frames are JSON in text messages")
		}
		frames, perr := protocol.DecodeMessage(b)
		if perr != nil {
			return nil, asProtoErr(perr)
		}
		if len(frames) != 1 {
			return nil, protocol.Errorf(protocol.CodeMalformed, "send one frame per message")
		}
		return frames[0], nil
	}
	hello, perr := read()
	if perr != nil {
		return nil, perr
	}
	if hello.Type != protocol.THello {
		return nil, protocol.Errorf(protocol.CodeMalformed, "expected hello, got %s", hello.Type)
	}
	if err := hello.Validate(); err != nil {
		return nil, asProtoErr(err)
	}
	nonce := make([]byte, protocol.NonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, protocol.Errorf(protocol.CodeInternal, "no randomness")
	}
	ch := protocol.MustEncode(&protocol.Frame{Type: protocol.TChallenge, Nonce: nonce, ServerID: s.serverID})
	wctx, wcancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	err := conn.Write(wctx, websocket.MessageText, ch)
	wcancel()
	if err != nil {
		return nil, protocol.Errorf(protocol.CodeMalformed, "connection closed during the handshake")
	}
	f, perr := read()
	if perr != nil {
		return nil, perr
	}
	var reg *protocol.Frame
	if f.Type == protocol.TRegister {
		if err := f.Validate(); err != nil {
			return nil, asProtoErr(err)
		}
		reg = f
		if f, perr = read(); perr != nil {
			return nil, perr
		}
		if f.Type != protocol.TAuth {
			return nil, protocol.Errorf(protocol.CodeMalformed, "expected auth after register, got %s", f.Type)
		}
	}
	if f.Type != protocol.TAuth {
		return nil, protocol.Errorf(protocol.CodeMalformed, "expected register or auth, got %s", f.Type)
	}
	if err := f.Validate(); err != nil {
		return nil, asProtoErr(err)
	}
	pub := ed25519.PublicKey(f.Pubkey)
	if reg != nil && !bytes.Equal(reg.Pubkey, f.Pubkey) {
		return nil, protocol.Errorf(protocol.CodeUnauthorized, "auth key does not match the registered key")
	}
	if !protocol.VerifyAuth(pub, s.serverID, nonce, hello.Session, f.Signature) {
		return nil, protocol.Errorf(protocol.CodeUnauthorized, "signature verification failed")
	}
	if reg != nil {
		pin, pinned := s.admins[reg.Username]
		if pinned && pin != nil && !pin.Equal(pub) {
			return nil, protocol.Errorf(protocol.CodeUnauthorized, "username %q is reserved for a different key", reg.Username)
		}
		if s.cfg.RegistrationClosed && (pin == nil || !pin.Equal(pub)) {
			return nil, protocol.Errorf(protocol.CodeUnauthorized, "registration is closed on this server: ask a server admin to add you (conclave user add)")
		}
		actor := projections.Actor{User: reg.Username, Path: reg.Username + "/" + reg.Machine + "/" + hello.Session}
		sctx, scancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
		err := s.submit(sctx, actor, projections.Register{User: reg.Username, Machine: reg.Machine, Pubkey: pub}, nil)
		scancel()
		if err != nil {
			return nil, asProtoErr(err)
		}
		s.log.Info("user registered", "user", reg.Username, "machine", reg.Machine)
	}
	s.mu.RLock()
	user, machine, ok := s.state.UserByKey(pub)
	s.mu.RUnlock()
	if !ok {
		return nil, protocol.Errorf(protocol.CodeUnauthorized, "unknown machine key")
	}
	path := protocol.SessionPath{User: user, Machine: machine, Session: hello.Session}.String()
	sess := &session{
		srv: s, conn: conn, path: path, user: user, machine: machine,
		actor: projections.Actor{User: user, Path: path, ServerAdmin: s.isAdmin(user)},
		log:   s.log.With("session", path),
		out:   make(chan []byte, s.cfg.QueueLen),
		dead:  make(chan struct{}),
		subs:  make(map[string]struct{}),
	}
	if s.cfg.RateLimit > 0 {
		sess.limiter = newBucket(s.cfg.RateLimit, s.cfg.RateBurst)
	}
	sess.lastSeen.Store(time.Now().UnixNano())
	if !timer.Stop() {
		return nil, errHandshakeTimeout
	}
	return sess, nil
}

// asProtoErr turns any error into a protocol error safe to send.
func asProtoErr(err error) *protocol.Error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return protocol.Errorf(protocol.CodeUnauthorized, protocol.ReasonHandshake)
	}
	return protocol.Errorf(protocol.CodeInternal, "internal error")
}

func truncateReason(s string) string {
	// A close reason must fit in a control frame (123 bytes).
	if len(s) > 120 {
		return s[:120]
	}
	return s
}

// readLoop handles the session's frames in order until the connection or
// the session ends.
func (sess *session) readLoop() {
	// Reads are not cancelled by a context (that would close the
	// connection before the final reason is written); the writer closes
	// the connection when the session dies, which ends the read.
	ctx := context.Background()
	for {
		typ, b, err := sess.conn.Read(ctx)
		if err != nil {
			if errors.Is(err, websocket.ErrMessageTooBig) {
				sess.srv.metrics.rejected(protocol.CodeTooLarge)
				sess.kill(fmt.Sprintf("frame larger than %d bytes", protocol.MaxFramePostAuth))
			}
			return
		}
		sess.lastSeen.Store(time.Now().UnixNano())
		if typ != websocket.MessageText {
			sess.reject("", protocol.Errorf(protocol.CodeMalformed, "frames are JSON in text messages"))
			continue
		}
		frames, perr := protocol.DecodeMessage(b)
		for _, f := range frames {
			sess.handle(ctx, f)
		}
		if perr != nil {
			sess.reject("", asProtoErr(perr))
		}
	}
}

// reject sends an error reply and counts it.
func (sess *session) reject(id string, e *protocol.Error) {
	sess.srv.metrics.rejected(e.Code)
	sess.send(protocol.ErrorFrame(id, e))
}

// writeLoop drains the outbound queue, coalescing queued frames into one
// message per write, until the session dies; then it sends the final
// reason and closes the connection.
func (sess *session) writeLoop() {
	var buf bytes.Buffer
	write := func(b []byte) error {
		wctx, cancel := context.WithTimeout(context.Background(), sess.srv.cfg.WriteTimeout)
		defer cancel()
		return sess.conn.Write(wctx, websocket.MessageText, b)
	}
	for {
		select {
		case f := <-sess.out:
			buf.Reset()
			buf.Write(f)
			n := 1
		more:
			for n < maxCoalesce {
				select {
				case f := <-sess.out:
					buf.WriteByte('\n')
					buf.Write(f)
					n++
				default:
					break more
				}
			}
			sess.srv.metrics.framesOut.Add(int64(n))
			if err := write(buf.Bytes()); err != nil {
				sess.kill("write failed")
				sess.conn.CloseNow()
				return
			}
		case <-sess.dead:
			sess.flushAndClose(write)
			return
		}
	}
}

// flushAndClose sends what is still queued (bounded), the final error
// frame with the reason, and closes the connection.
func (sess *session) flushAndClose(write func([]byte) error) {
	var buf bytes.Buffer
	for n := 0; n < maxCoalesce; n++ {
		select {
		case f := <-sess.out:
			buf.Write(f)
			buf.WriteByte('\n')
			continue
		default:
		}
		break
	}
	reason := sess.reason
	status := websocket.StatusPolicyViolation
	if reason == "session closed" {
		sess.conn.Close(websocket.StatusNormalClosure, "")
		return
	}
	if reason == protocol.ReasonShutdown {
		status = websocket.StatusGoingAway
	}
	buf.Write(protocol.MustEncode(protocol.ErrorFrame("", protocol.Errorf(protocol.CodeUnauthorized, "%s", reason))))
	if reason != protocol.ReasonSlowConsumer {
		write(buf.Bytes())
	}
	sess.conn.Close(status, truncateReason(reason))
}
