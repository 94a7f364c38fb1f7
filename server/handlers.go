package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"time"

	"github.com/conclave/conclave/identity"

	"github.com/conclave/conclave/projections"
	"github.com/conclave/conclave/protocol"
)

// handle answers one frame from an established session.
func (sess *session) handle(ctx context.Context, f *protocol.Frame) {
	s := sess.srv
	s.metrics.framesIn.Add(1)
	if !protocol.SentBy(f.Type, protocol.ClientToServer) || !protocol.IsRequest(f.Type) {
		sess.reject(f.ID, protocol.Errorf(protocol.CodeMalformed, "unexpected %s frame from a client", f.Type))
		return
	}
	if f.ID == "" && f.Type != protocol.TPing {
		// A client's channel_msg or whisper is always a request, even when
		// it is shaped like a delivery (from, ts_ms).
		sess.reject("", protocol.Errorf(protocol.CodeMalformed, "%s request has no \"id\"", f.Type))
		return
	}
	if err := f.Validate(); err != nil {
		sess.reject(f.ID, asProtoErr(err))
		return
	}
	sess.log.Debug("frame", "type", f.Type)
	reply, err := sess.dispatch(ctx, f)
	if err != nil {
		sess.reject(f.ID, asProtoErr(err))
		return
	}
	if reply != nil {
		reply.ID = f.ID
		sess.send(reply)
	}
}

func ack(detail string) *protocol.Frame { return &protocol.Frame{Type: protocol.TAck, Detail: detail} }

// dispatch runs a validated request and returns its reply.
func (sess *session) dispatch(ctx context.Context, f *protocol.Frame) (*protocol.Frame, error) {
	s := sess.srv
	switch f.Type {
	case protocol.TPing:
		return &protocol.Frame{Type: protocol.TPong}, nil
	case protocol.TJoin:
		return sess.join(ctx, f)
	case protocol.TLeave:
		s.hub.unsubscribe(sess, f.Channel)
		return ack(f.Channel), nil
	case protocol.TWho:
		return sess.who(f)
	case protocol.TListChannels:
		s.mu.RLock()
		list := s.state.ListChannels(sess.actor)
		s.mu.RUnlock()
		return &protocol.Frame{Type: protocol.TChannelList, Channels: list}, nil
	case protocol.TListMachines:
		s.mu.RLock()
		ms := s.state.Machines(sess.user)
		s.mu.RUnlock()
		out := make([]protocol.MachineInfo, 0, len(ms))
		for _, m := range ms {
			out = append(out, protocol.MachineInfo{Name: m.Name, Pubkey: m.Pubkey, Fingerprint: identity.Fingerprint(m.Pubkey),
				AddedAt: time.UnixMilli(m.AddedAtMs).UTC().Format(time.RFC3339), Approver: m.Approver})
		}
		return &protocol.Frame{Type: protocol.TMachineList, Machines: out}, nil
	case protocol.TListUsers:
		if !sess.actor.ServerAdmin {
			return nil, protocol.Errorf(protocol.CodeUnauthorized, "not authorized: server admin role required")
		}
		s.mu.RLock()
		us := s.state.Users()
		s.mu.RUnlock()
		names := make([]string, 0, len(us))
		for _, u := range us {
			names = append(names, u.Name)
		}
		return &protocol.Frame{Type: protocol.TUserList, Users: names}, nil
	case protocol.TChannelMsg:
		return sess.post(f)
	case protocol.TWhisper:
		return sess.whisper(f)
	case protocol.TReadSince:
		return sess.readSince(ctx, f)
	case protocol.TAudit:
		return sess.audit(f)
	case protocol.TMachineAdd:
		err := s.submit(ctx, sess.actor, projections.MachineAdd{Machine: f.Machine, Pubkey: f.Pubkey}, nil)
		return ack(f.Machine), err
	case protocol.TMachineRemove:
		user, machine := sess.user, f.Machine
		err := s.submit(ctx, sess.actor, projections.MachineRemove{Machine: machine}, func() {
			// The caller's ack is queued before its own session is dropped.
			sess.send(&protocol.Frame{Type: protocol.TAck, ID: f.ID, Detail: machine})
			s.hub.kill(func(o *session) bool { return o.user == user && o.machine == machine }, protocol.ReasonMachineGone)
		})
		if err != nil {
			return nil, err
		}
		return nil, nil // ack already sent by the effect
	case protocol.TApproverAdd:
		err := s.submit(ctx, sess.actor, projections.ApproverAdd{Machine: f.Machine, User: f.User}, nil)
		return ack(f.Machine), err
	case protocol.TApproverRemove:
		err := s.submit(ctx, sess.actor, projections.ApproverRemove{Machine: f.Machine}, nil)
		return ack(f.Machine), err
	case protocol.TPermissionRequest:
		return s.relay.request(sess, f, time.Now())
	case protocol.TPermissionVerdict:
		return s.relay.verdict(sess, f, time.Now())
	case protocol.TPermissionList:
		return s.relay.list(sess, time.Now())
	case protocol.TPermissionWithdraw:
		return s.relay.withdraw(sess, f, time.Now())
	case protocol.TEnrollLink:
		return sess.enrollLinkReq(f)
	case protocol.TCreateChannel:
		vis := protocol.Visibility(f.Visibility)
		if vis == "" {
			vis = protocol.Public
		}
		err := s.submit(ctx, sess.actor, projections.CreateChannel{Channel: f.Channel, Visibility: vis}, nil)
		return ack(f.Channel), err
	}
	return sess.dispatchAdmin(ctx, f)
}

// join checks access and subscribes. A join that needs no write (public,
// unlisted, or already a member) is decided and subscribed under the state
// lock, so a concurrent ban either sees the subscription or is seen by it.
func (sess *session) join(ctx context.Context, f *protocol.Frame) (*protocol.Frame, error) {
	s := sess.srv
	cmd := projections.Join{Channel: f.Channel, Token: f.Token}
	// The head is taken with the subscription, under the lock that
	// numbers posts: every post numbered up to it is history, every later
	// one is delivered to this session.
	var head uint64
	subscribe := func() { head = s.history.at(func() { s.hub.subscribe(sess, f.Channel) }) }
	s.mu.RLock()
	events, perr := s.state.Decide(sess.actor, cmd, time.Now())
	if perr == nil && len(events) == 0 {
		subscribe()
	}
	s.mu.RUnlock()
	if perr != nil {
		return nil, perr
	}
	if len(events) > 0 {
		if err := s.submit(ctx, sess.actor, cmd, subscribe); err != nil {
			return nil, err
		}
	}
	return &protocol.Frame{Type: protocol.TJoined, Channel: f.Channel, Seq: head}, nil
}

func (sess *session) who(f *protocol.Frame) (*protocol.Frame, error) {
	s := sess.srv
	if f.Channel != "" {
		s.mu.RLock()
		_, exists := s.state.Channel(f.Channel)
		visible := exists && s.state.Visible(sess.actor, f.Channel)
		s.mu.RUnlock()
		if !visible {
			return nil, protocol.NoSuchChannel(f.Channel)
		}
	}
	return &protocol.Frame{Type: protocol.TPresence, Channel: f.Channel, Sessions: s.hub.paths(f.Channel)}, nil
}

// post stores a channel message and fans it out to every other
// subscriber at once; the ack follows when the record is durable.
func (sess *session) post(f *protocol.Frame) (*protocol.Frame, error) {
	s := sess.srv
	if size := f.PayloadSize(); size > s.cfg.MaxBody {
		return nil, protocol.Errorf(protocol.CodeTooLarge, "message body is %d bytes; the limit is %d", size, s.cfg.MaxBody)
	}
	cid, err := sess.subscribedChannel(f.Channel)
	if err != nil {
		return nil, err
	}
	if err := sess.allow(); err != nil {
		return nil, err
	}
	if perr := s.history.post(sess, f, cid); perr != nil {
		return nil, perr
	}
	return nil, nil // persistPosts acks
}

// subscribedChannel returns the id of a channel the session is subscribed
// to. The refusal is identical for missing, private and unjoined channels.
func (sess *session) subscribedChannel(name string) (uint64, error) {
	s := sess.srv
	s.mu.RLock()
	c, ok := s.state.Channel(name)
	s.mu.RUnlock()
	if !ok || !s.hub.subscribed(sess, name) {
		return 0, protocol.Errorf(protocol.CodeNotFound, "not subscribed to channel %q (join it first)", name)
	}
	return c.ID, nil
}

// readSince returns one page of a subscribed channel's history.
func (sess *session) readSince(ctx context.Context, f *protocol.Frame) (*protocol.Frame, error) {
	cid, err := sess.subscribedChannel(f.Channel)
	if err != nil {
		return nil, err
	}
	var page *protocol.Frame
	if f.BeforeSeq != nil {
		page, err = sess.srv.history.pageBefore(ctx, cid, f.Channel, *f.BeforeSeq, f.Limit)
	} else {
		page, err = sess.srv.history.page(ctx, cid, f.Channel, f.AfterSeq, f.SinceMs, f.UntilSeq, f.Limit)
	}
	if err != nil {
		sess.log.Error("history read failed", "channel", f.Channel, "err", err)
		return nil, protocol.Errorf(protocol.CodeInternal, "could not read the history")
	}
	return page, nil
}

// whisper delivers to exactly one live session.
func (sess *session) whisper(f *protocol.Frame) (*protocol.Frame, error) {
	s := sess.srv
	if size := f.PayloadSize(); size > s.cfg.MaxBody {
		return nil, protocol.Errorf(protocol.CodeTooLarge, "message body is %d bytes; the limit is %d", size, s.cfg.MaxBody)
	}
	if err := sess.allow(); err != nil {
		return nil, err
	}
	target := s.hub.lookup(f.Target)
	if target == nil {
		// Identical for unknown users and offline sessions.
		return nil, protocol.Errorf(protocol.CodeNotFound, "no live session %q", f.Target)
	}
	now := time.Now()
	target.send(&protocol.Frame{Type: protocol.TWhisper, From: sess.path, Target: f.Target, Body: f.Body, Sealed: f.Sealed, TsMs: now.UnixMilli()})
	s.metrics.messagesIn.Add(1)
	s.metrics.deliveries.Add(1)
	return &protocol.Frame{Type: protocol.TAck, TsMs: now.UnixMilli()}, nil
}

// allow applies the per-session rate limit to posts and whispers.
func (sess *session) allow() error {
	if sess.limiter == nil {
		return nil
	}
	if wait := sess.limiter.take(time.Now()); wait > 0 {
		return protocol.Errorf(protocol.CodeRateLimited, "too many messages; retry after %d ms", wait.Milliseconds()+1)
	}
	return nil
}

// newToken returns a random invite token (24 bytes, base64url).
func newToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
