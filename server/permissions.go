package server

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/conclave/conclave/protocol"
)

// maxPendingPerSession bounds the permission requests one bridge session
// keeps pending (Claude Code asks one at a time; a flood is refused).
const maxPendingPerSession = 64

// permRelay holds the permission requests that bridge sessions forwarded, in
// memory only, until a person's session on one of the user's approver
// machines answers, the request expires (Config.PermissionTTL), or the
// requesting session ends. Its methods are safe for concurrent use.
//
// Lock order: permRelay.mu is never held while taking Server.mu or hub.mu, nor
// while queueing a frame (a failed queue kills a session, and a dying
// session drops its requests here).
type permRelay struct {
	srv *Server

	// mu guards reqs.
	mu   sync.Mutex
	reqs map[permKey]*permEntry
}

// permKey names a request: the requesting session's path and the id in
// lower case (Claude Code matches ids case-insensitively).
type permKey struct{ path, id string }

type permEntry struct {
	owner   *session // the bridge session that asked; a re-send after a reconnect takes it over
	user    string
	info    protocol.PermissionInfo
	expires time.Time
	// answered is the verdict once one was given (the entry is kept until
	// it expires, so that a late verdict learns it came second), and by
	// whom.
	answered, by string
}

func newPermRelay(s *Server) *permRelay {
	return &permRelay{srv: s, reqs: make(map[permKey]*permEntry)}
}

// request stores a permission request from a bridge session and shows it
// to the user's approver sessions.
func (r *permRelay) request(sess *session, f *protocol.Frame, now time.Time) (*protocol.Frame, error) {
	s := r.srv
	if !sess.bridge {
		return nil, protocol.Errorf(protocol.CodeUnauthorized, "not authorized: only a bridge session (hello role %q) relays permission requests", protocol.RoleBridge)
	}
	s.mu.RLock()
	approvers := s.state.Approvers(sess.user)
	s.mu.RUnlock()
	if len(approvers) == 0 {
		return nil, protocol.Errorf(protocol.CodeNotFound,
			"%s has no approver machines, so permission requests are not relayed: answer in Claude Code's terminal (a person sets one up with `conclave machine approver add NAME`)", sess.user)
	}
	ttl := s.cfg.PermissionTTL
	asked := now
	if f.TsMs > 0 && f.TsMs < now.UnixMilli() {
		asked = time.UnixMilli(f.TsMs)
	}
	if !asked.Add(ttl).After(now) {
		return nil, protocol.Errorf(protocol.CodeNotFound, "permission request %q has expired (requests live %s)", f.RequestID, ttl)
	}
	key := permKey{sess.path, strings.ToLower(f.RequestID)}
	info := protocol.PermissionInfo{From: sess.path, RequestID: f.RequestID, ToolName: f.ToolName,
		Description: f.Description, InputPreview: f.InputPreview, TsMs: asked.UnixMilli()}

	r.mu.Lock()
	e, resent := r.reqs[key]
	resent = resent && e.expires.After(now)
	if !resent {
		n := 0
		for _, o := range r.reqs {
			if o.owner == sess && o.answered == "" && o.expires.After(now) {
				n++
			}
		}
		if n >= maxPendingPerSession {
			r.mu.Unlock()
			return nil, protocol.Errorf(protocol.CodeRateLimited, "%d permission requests of this session are already pending", n)
		}
		e = &permEntry{user: sess.user, info: info, expires: asked.Add(ttl)}
		r.reqs[key] = e
	}
	e.owner = sess
	answered, by := e.answered, e.by
	r.mu.Unlock()

	switch {
	case answered != "":
		// A re-send after a reconnect of a request already answered: the
		// verdict may have been lost with the old connection.
		sess.send(verdictFrame(e.info.RequestID, answered, by, now))
	case !resent:
		d := &protocol.Frame{Type: protocol.TPermissionRequest, From: info.From, RequestID: info.RequestID,
			ToolName: info.ToolName, Description: info.Description, InputPreview: info.InputPreview, TsMs: info.TsMs}
		r.notify(sess.user, d)
		sess.log.Info("permission request relayed", "request", info.RequestID, "tool", info.ToolName)
	}
	return ack(f.RequestID), nil
}

func verdictFrame(id, behavior, by string, now time.Time) *protocol.Frame {
	return &protocol.Frame{Type: protocol.TPermissionVerdict, RequestID: id, Behavior: behavior, From: by, TsMs: now.UnixMilli()}
}

// approverGate refuses a session that may not see or answer the user's
// permission requests: a bridge session, or one on a machine that is not
// an approver.
func (r *permRelay) approverGate(sess *session) error {
	if sess.bridge {
		return protocol.Errorf(protocol.CodeUnauthorized, "not authorized: a bridge session never answers permission requests")
	}
	s := r.srv
	s.mu.RLock()
	approvers := s.state.Approvers(sess.user)
	s.mu.RUnlock()
	if len(approvers) == 0 {
		return protocol.Errorf(protocol.CodeUnauthorized,
			"not authorized: %s has no approver machines; add one with `conclave machine approver add NAME`", sess.user)
	}
	if !slices.Contains(approvers, sess.machine) {
		return protocol.Errorf(protocol.CodeUnauthorized,
			"not authorized: machine %s is not an approver machine of %s (approvers: %s)", sess.machine, sess.user, strings.Join(approvers, ", "))
	}
	return nil
}

// list returns the user's pending requests, oldest first.
func (r *permRelay) list(sess *session, now time.Time) (*protocol.Frame, error) {
	if err := r.approverGate(sess); err != nil {
		return nil, err
	}
	r.mu.Lock()
	out := []protocol.PermissionInfo{}
	for _, e := range r.reqs {
		if e.user == sess.user && e.answered == "" && e.expires.After(now) {
			out = append(out, e.info)
		}
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b protocol.PermissionInfo) int {
		if a.TsMs != b.TsMs {
			return int(a.TsMs - b.TsMs)
		}
		return strings.Compare(a.From+"\x00"+a.RequestID, b.From+"\x00"+b.RequestID)
	})
	return &protocol.Frame{Type: protocol.TPermissions, Permissions: out}, nil
}

// matches reports whether a verdict's target (a session path, or only its
// last part) selects the requesting session path.
func matches(target, path string) bool {
	if target == "" || target == path {
		return true
	}
	if strings.Contains(target, "/") {
		return false
	}
	return path[strings.LastIndexByte(path, '/')+1:] == target
}

// verdict answers one pending request. The first verdict wins; a request
// that is unknown, expired, of another user, or whose session ended is
// refused identically.
func (r *permRelay) verdict(sess *session, f *protocol.Frame, now time.Time) (*protocol.Frame, error) {
	if err := r.approverGate(sess); err != nil {
		return nil, err
	}
	id := strings.ToLower(f.RequestID)
	r.mu.Lock()
	var open, done []*permEntry
	for k, e := range r.reqs {
		if e.user != sess.user || k.id != id || !matches(f.Target, k.path) || !e.expires.After(now) {
			continue
		}
		if e.answered == "" {
			open = append(open, e)
		} else {
			done = append(done, e)
		}
	}
	if len(open) != 1 {
		r.mu.Unlock()
		switch {
		case len(open) > 1:
			paths := make([]string, 0, len(open))
			for _, e := range open {
				paths = append(paths, e.info.From)
			}
			slices.Sort(paths)
			return nil, protocol.Errorf(protocol.CodeConflict,
				"request %q is pending in several sessions (%s): name one with --session", f.RequestID, strings.Join(paths, ", "))
		case len(done) > 0:
			return nil, protocol.Errorf(protocol.CodeConflict, "request %q was already answered (%s by %s): the first verdict wins",
				f.RequestID, done[0].answered, done[0].by)
		}
		return nil, protocol.Errorf(protocol.CodeNotFound,
			"no pending permission request %q (unknown, expired, or its session ended); see `conclave approvals`", f.RequestID)
	}
	e := open[0]
	e.answered, e.by = f.Behavior, sess.path
	owner, info := e.owner, e.info
	r.mu.Unlock()

	owner.send(verdictFrame(info.RequestID, f.Behavior, sess.path, now))
	r.notify(sess.user, &protocol.Frame{Type: protocol.TPermissionResolved, From: info.From, RequestID: info.RequestID,
		Behavior: f.Behavior, Reason: f.Behavior + " by " + sess.path})
	sess.log.Info("permission verdict", "request", info.RequestID, "requester", info.From, "behavior", f.Behavior)
	return ack(info.From), nil
}

// withdrawnReason is the outcome the approvers see for a withdrawn request.
const withdrawnReason = "withdrawn: the requesting session no longer waits for an answer"

// withdraw forgets a pending request that its own session no longer waits
// on (a hook that gave up, leaving the decision to the runtime's own
// prompt) and tells the approvers, so that nobody answers a request whose
// verdict would go nowhere.
func (r *permRelay) withdraw(sess *session, f *protocol.Frame, now time.Time) (*protocol.Frame, error) {
	if !sess.bridge {
		return nil, protocol.Errorf(protocol.CodeUnauthorized, "not authorized: only the bridge session that relayed a permission request withdraws it")
	}
	key := permKey{sess.path, strings.ToLower(f.RequestID)}
	r.mu.Lock()
	e, ok := r.reqs[key]
	if !ok || !e.expires.After(now) {
		r.mu.Unlock()
		return nil, protocol.Errorf(protocol.CodeNotFound, "no pending permission request %q of this session (unknown or expired)", f.RequestID)
	}
	if e.answered != "" {
		answered, by := e.answered, e.by
		r.mu.Unlock()
		return nil, protocol.Errorf(protocol.CodeConflict, "request %q was already answered (%s by %s)", f.RequestID, answered, by)
	}
	delete(r.reqs, key)
	info := e.info
	r.mu.Unlock()
	r.notify(sess.user, &protocol.Frame{Type: protocol.TPermissionResolved, From: info.From, RequestID: info.RequestID,
		Reason: withdrawnReason})
	sess.log.Info("permission request withdrawn", "request", info.RequestID)
	return ack(info.RequestID), nil
}

// drop forgets the requests of a session that ended and tells the
// approvers that those still pending are gone.
func (r *permRelay) drop(sess *session) {
	if !sess.bridge {
		return
	}
	var gone []protocol.PermissionInfo
	r.mu.Lock()
	for k, e := range r.reqs {
		if e.owner == sess {
			if e.answered == "" {
				gone = append(gone, e.info)
			}
			delete(r.reqs, k)
		}
	}
	r.mu.Unlock()
	for _, info := range gone {
		r.notify(sess.user, &protocol.Frame{Type: protocol.TPermissionResolved, From: info.From, RequestID: info.RequestID,
			Reason: "the requesting session ended"})
	}
}

// expire forgets the requests older than the TTL and tells the approvers
// of those still unanswered. The reaper calls it; until then an expired
// request is treated as absent.
func (r *permRelay) expire(now time.Time) {
	r.mu.Lock()
	var gone []*permEntry
	for k, e := range r.reqs {
		if !e.expires.After(now) {
			if e.answered == "" {
				gone = append(gone, e)
			}
			delete(r.reqs, k)
		}
	}
	r.mu.Unlock()
	for _, e := range gone {
		r.notify(e.user, &protocol.Frame{Type: protocol.TPermissionResolved, From: e.info.From, RequestID: e.info.RequestID,
			Reason: "expired"})
	}
}

// notify queues f to every person's session on one of user's approver
// machines.
func (r *permRelay) notify(user string, f *protocol.Frame) {
	s := r.srv
	s.mu.RLock()
	approvers := s.state.Approvers(user)
	s.mu.RUnlock()
	if len(approvers) == 0 {
		return
	}
	b := protocol.MustEncode(f)
	for _, o := range s.hub.matching(func(o *session) bool {
		return o.user == user && !o.bridge && slices.Contains(approvers, o.machine)
	}) {
		if !o.enqueue(b) {
			o.kill(protocol.ReasonSlowConsumer)
		}
	}
}
