package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/conclave/conclave/projections"
	"github.com/conclave/conclave/protocol"
)

// session is one authenticated connection.
type session struct {
	srv     *Server
	conn    *websocket.Conn
	path    string
	user    string
	machine string
	bridge  bool // hello.role "bridge": an agent's session
	actor   projections.Actor
	log     *slog.Logger

	// raw is the connection under conn (see smallBuffers): closing it
	// ends a pending read (cancelRead). Reads take no context, which
	// would cost an allocation and a registration per read.
	raw net.Conn

	out outbox // frames waiting for the writeLoop goroutine
	// writer is what writeLoop writes with, made by the first one (at
	// most one writeLoop runs at a time; see outbox).
	writer *timedConn
	// writerDone is closed by the writeLoop that sent the final frame
	// and closed the connection, after the session died.
	writerDone chan struct{}

	dead     chan struct{}
	killOnce sync.Once
	reason   protocol.Reason // set once, before dead is closed

	// posts holds a token per post whose reply (ack or error) has not
	// yet left the outbox for the network: a session that pipelines more
	// posts than that waits before its next post is read. This bounds the
	// posts of one session in the history queue, and its replies in its
	// outbox.
	posts chan struct{}

	// lastSeen is the unix nanos of the last sign of life from the
	// client: a frame, or a WebSocket ping or pong (see serveWS).
	lastSeen *atomic.Int64
	limiter  *bucket

	// subs is guarded by hub.mu.
	subs map[string]struct{}

	// claim is what the hub needs to referee two sessions asking for
	// one handle (claim.go).
	claim claim
}

// send encodes and queues a frame, dropping the session if it cannot keep up.
func (sess *session) send(f *protocol.Frame) {
	if !sess.enqueue(protocol.MustEncode(f)) {
		sess.kill(protocol.ReasonSlowConsumer)
	}
}

// kill drops the session: it leaves presence at once, and its writeLoop sends
// a final error frame with reason and closes the connection.
func (sess *session) kill(reason protocol.Reason) {
	sess.killOnce.Do(func() {
		sess.reason = reason
		close(sess.dead)
		sess.closeOutbox()
		sess.srv.hub.detach(sess)
		sess.srv.relay.drop(sess)
		switch reason {
		case reasonClosed:
			sess.log.Debug("session ended")
		case protocol.ReasonShutdown:
		case protocol.ReasonSlowConsumer:
			sess.srv.metrics.slowDrops.Add(1)
			bytes, entries := sess.out.usage()
			sess.log.Warn("slow consumer dropped: its queued frames are discarded", "queued_bytes", bytes, "queued_frames", entries,
				"budget_bytes", sess.srv.cfg.QueueBytes, "budget_frames", sess.srv.cfg.QueueLen)
		default:
			sess.log.Info("session dropped", "reason", reason.Text())
		}
	})
}

func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket") &&
		strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade")
}

// serveWS accepts a WebSocket and runs the handshake. An established
// session then runs in a goroutine of its own and the handler returns, so
// that net/http's per-request memory (the request, its headers, the
// response and its buffers, about 10 KiB) is not held for the session's
// life. done is called once the connection has ended.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request, done func()) {
	w.Header().Set("X-Conclave-Server-Id", s.serverID)
	// WebSocket pings and pongs from the client count as liveness, so
	// that a client that only listens stays connected: the reaper pings
	// quiet sessions, and every WebSocket library answers pings.
	seen := new(atomic.Int64)
	alive := func() { seen.Store(time.Now().UnixNano()) }
	hw := &smallBuffers{ResponseWriter: w}
	conn, err := websocket.Accept(hw, r, &websocket.AcceptOptions{
		Subprotocols:       []string{protocol.Subprotocol},
		InsecureSkipVerify: true, // non-browser clients; no cookies or ambient authority exist
		OnPingReceived:     func(context.Context, []byte) bool { alive(); return true },
		OnPongReceived:     func(context.Context, []byte) { alive() },
	})
	if err != nil {
		s.log.Debug("websocket accept failed", "remote", r.RemoteAddr, "err", err)
		done()
		return
	}
	s.metrics.connections.Add(1)
	conn.SetReadLimit(protocol.MaxFramePreAuth)

	sess, herr := s.handshake(conn, seen)
	if sess != nil {
		sess.raw = hw.conn
	}
	if herr != nil {
		s.metrics.rejected(herr.Code)
		s.log.Debug("handshake refused", "remote", r.RemoteAddr, "code", herr.Code, "reason", herr.Message)
		if herr != errHandshakeTimeout {
			sendFinal(conn, herr, websocket.StatusPolicyViolation, nil)
		}
		done()
		return
	}
	conn.SetReadLimit(protocol.MaxFramePostAuth)
	// closing is set under hub.mu by Shutdown before it waits on live, so
	// no session is added to live once the wait may have begun.
	s.hub.mu.Lock()
	if s.closing.Load() {
		s.hub.mu.Unlock()
		sendFinal(conn, protocol.ReasonShutdown.Err(), websocket.StatusGoingAway, nil)
		done()
		return
	}
	s.hub.live.Add(1)
	s.hub.mu.Unlock()
	go s.runSession(sess, done)
}

// cancelRead ends a read pending on the session's connection by closing
// the connection under it, when a close handshake finds the peer
// unresponsive.
func (sess *session) cancelRead() {
	if sess.raw != nil {
		sess.raw.Close()
	} else {
		sess.conn.CloseNow()
	}
}

// runSession runs an established session to its end.
func (s *Server) runSession(sess *session, done func()) {
	defer done()
	defer s.hub.live.Done()
	if refusal := s.hub.attach(sess); refusal != nil {
		s.metrics.rejected(refusal.Code)
		sess.log.Info("session refused", "reason", refusal.Message)
		sendFinal(sess.conn, refusal, websocket.StatusPolicyViolation, sess.cancelRead)
		sess.cancelRead()
		return
	}
	if s.closing.Load() {
		sess.kill(protocol.ReasonShutdown)
	}
	sess.log.Info("session established")
	sess.send(&protocol.Frame{Type: protocol.TEstablished, Path: sess.path, Admin: ptrBool(sess.actor.ServerAdmin), ServerID: s.serverID,
		MaxBody: s.cfg.MaxBody, MaxMessage: protocol.MaxMessage})

	sess.readLoop()
	sess.kill(reasonClosed)
	<-sess.writerDone
	sess.cancelRead()
	s.metrics.sessions.Add(-1)
}

// Ends of a session that the client is not told: it closed the connection
// itself, or a write to it failed (the connection is gone).
const (
	reasonClosed      protocol.Reason = "closed"
	reasonWriteFailed protocol.Reason = "write_failed"
)

// sendFinal writes one error frame and closes the connection.
// cancelRead, if not nil, cancels a read that may be pending on conn.
func sendFinal(conn *websocket.Conn, e *protocol.Error, status websocket.StatusCode, cancelRead func()) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	conn.Write(ctx, websocket.MessageText, protocol.MustEncode(protocol.ErrorFrame("", e)))
	cancel()
	closeConn(conn, status, truncateReason(e.Message), cancelRead, closeWait)
}

// closeWait bounds how long a close waits for the peer's close frame: a
// peer that never answers (a slow-loris client) must not hold the
// connection for the library's default five seconds.
const closeWait = 500 * time.Millisecond

// closeConn closes conn with a close handshake bounded by wait (closeWait,
// but for a slow consumer). The handshake needs the read lock, which a
// pending read holds until the peer answers; past wait, cancelRead (if not
// nil) cancels that read, and a cancelled read closes the connection at
// once.
func closeConn(conn *websocket.Conn, status websocket.StatusCode, reason string, cancelRead func(), wait time.Duration) {
	done := make(chan struct{})
	go func() {
		conn.Close(status, reason)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(wait):
		if cancelRead != nil {
			cancelRead()
		}
		<-done
	}
}

func ptrBool(b bool) *bool { return &b }

// asProtoErr turns any error into a protocol error safe to send.
func asProtoErr(err error) *protocol.Error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return protocol.ReasonHandshake.Err()
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
	// Reads are not cancelled when the session dies (that would close the
	// connection before the final reason is written); writeLoop closes
	// the connection, which ends the read, and cancels it only if the
	// peer does not answer the close.
	ctx := context.Background()
	for {
		typ, bp, err := readMessage(ctx, sess.conn)
		if err != nil {
			if errors.Is(err, websocket.ErrMessageTooBig) {
				sess.srv.metrics.rejected(protocol.CodeTooLarge)
				sess.kill(protocol.ReasonTooLarge)
			}
			return
		}
		sess.lastSeen.Store(time.Now().UnixNano())
		if typ != websocket.MessageText {
			putReadBuf(bp)
			sess.reject("", protocol.Errorf(protocol.CodeMalformed, "frames are JSON in text messages"))
			continue
		}
		frames, perr := protocol.DecodeMessage(*bp)
		putReadBuf(bp) // the frames do not alias it
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
