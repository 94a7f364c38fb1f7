package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/conclave/conclave/projections"
	"github.com/conclave/conclave/protocol"
)

// errHandshakeTimeout is returned once the timeout has already told the
// client and closed the connection.
var errHandshakeTimeout = protocol.ReasonHandshake.Err()

// handshake runs hello, challenge, [register,] auth. Nothing durable is
// written before the signature is verified.
func (s *Server) handshake(conn *websocket.Conn, seen *atomic.Int64) (*session, *protocol.Error) {
	// The timeout tells the client and closes the connection, which ends
	// a pending read. (A read with an expiring context would close the
	// connection before the reason could be sent.)
	var timedOut atomic.Bool
	ctx, cancelRead := context.WithCancel(context.Background())
	defer cancelRead()
	expire := func(e *protocol.Error, status websocket.StatusCode) func() {
		return func() {
			if timedOut.CompareAndSwap(false, true) {
				sendFinal(conn, e, status, cancelRead)
			}
		}
	}
	timer := time.AfterFunc(s.cfg.HandshakeTimeout, expire(errHandshakeTimeout, websocket.StatusPolicyViolation))
	defer timer.Stop()
	stopWatch := context.AfterFunc(s.stopCtx, expire(protocol.ReasonShutdown.Err(), websocket.StatusGoingAway))
	defer stopWatch()
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
	var reg, enr *protocol.Frame
	if f.Type == protocol.TRegister || f.Type == protocol.TEnroll {
		if err := f.Validate(); err != nil {
			return nil, asProtoErr(err)
		}
		if f.Type == protocol.TEnroll {
			if perr := s.enrolls.check(f.Token, time.Now()); perr != nil {
				return nil, perr
			}
			enr = f
		} else {
			reg = f
		}
		first := f.Type
		if f, perr = read(); perr != nil {
			return nil, perr
		}
		if f.Type != protocol.TAuth {
			return nil, protocol.Errorf(protocol.CodeMalformed, "expected auth after %s, got %s", first, f.Type)
		}
	}
	if f.Type != protocol.TAuth {
		return nil, protocol.Errorf(protocol.CodeMalformed, "expected register or auth, got %s", f.Type)
	}
	if err := f.Validate(); err != nil {
		return nil, asProtoErr(err)
	}
	pub := ed25519.PublicKey(f.Pubkey)
	if (reg != nil && !bytes.Equal(reg.Pubkey, f.Pubkey)) || (enr != nil && !bytes.Equal(enr.Pubkey, f.Pubkey)) {
		return nil, protocol.Errorf(protocol.CodeUnauthorized, "auth key does not match the registered key")
	}
	if !protocol.VerifyAuth(pub, s.serverID, nonce, hello.Session, f.Signature) {
		return nil, protocol.Errorf(protocol.CodeUnauthorized, "signature verification failed")
	}
	if enr != nil {
		if perr := s.enrollKey(ctx, enr, pub); perr != nil {
			return nil, perr
		}
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
		return nil, protocol.ReasonUnknownKey.Err()
	}
	path := protocol.SessionPath{User: user, Machine: machine, Session: hello.Session}.String()
	bridge := hello.Role == protocol.RoleBridge
	sess := &session{
		srv: s, conn: conn, path: path, user: user, machine: machine, bridge: bridge,
		claim:      newClaim(hello),
		actor:      projections.Actor{User: user, Path: path, ServerAdmin: s.isAdmin(user), Bridge: bridge},
		log:        s.log.With("session", path),
		dead:       make(chan struct{}),
		writerDone: make(chan struct{}),
		posts:      make(chan struct{}, 4*s.cfg.QueueLen),
		subs:       make(map[string]struct{}),
		lastSeen:   seen,
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
