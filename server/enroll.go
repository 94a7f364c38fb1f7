package server

import (
	"context"
	"crypto/ed25519"
	"sync"
	"time"

	"github.com/conclave/conclave/projections"
	"github.com/conclave/conclave/protocol"
)

// Enrollment link limits.
const (
	// EnrollTTL is how long an enrollment link stays valid.
	EnrollTTL = 10 * time.Minute
	// maxLinksPerUser bounds the outstanding links of one user.
	maxLinksPerUser = 16
)

// errLinkGone is the one refusal for an unknown, used or expired link, so
// that a probe learns nothing about which it was.
var errLinkGone = protocol.Errorf(protocol.CodeUnauthorized, "this enrollment link is unknown, used or expired; run `conclave web` again for a new one")

// enrollLink is one outstanding enrollment link: whoever first presents
// its token, and proves a key, enrolls that key as machine of user.
type enrollLink struct {
	user    string
	machine string
	by      string // the session path that asked for the link
	expires time.Time
}

// enrollments holds the outstanding links. They live in memory only: a
// restart voids every link, which errs on the safe side. Safe for
// concurrent use.
type enrollments struct {
	// mu guards links.
	mu    sync.Mutex
	links map[string]enrollLink // token -> link
}

// create makes a link for user's new machine and returns its token.
func (e *enrollments) create(l enrollLink, now time.Time) (string, *protocol.Error) {
	token, err := newToken()
	if err != nil {
		return "", protocol.Errorf(protocol.CodeInternal, "internal error")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.links == nil {
		e.links = make(map[string]enrollLink)
	}
	n := 0
	for t, o := range e.links {
		if !now.Before(o.expires) {
			delete(e.links, t)
		} else if o.user == l.user {
			n++
		}
	}
	if n >= maxLinksPerUser {
		return "", protocol.Errorf(protocol.CodeRateLimited, "you have %d enrollment links outstanding; wait for one to be used or to expire", n)
	}
	e.links[token] = l
	return token, nil
}

// check reports whether token names a live link, without using it.
func (e *enrollments) check(token string, now time.Time) *protocol.Error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if l, ok := e.links[token]; !ok || !now.Before(l.expires) {
		return errLinkGone
	}
	return nil
}

// take uses up the link of token: it succeeds once.
func (e *enrollments) take(token string, now time.Time) (enrollLink, *protocol.Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	l, ok := e.links[token]
	delete(e.links, token)
	if !ok || !now.Before(l.expires) {
		return enrollLink{}, errLinkGone
	}
	return l, nil
}

// enrollLinkReq answers enroll_link: a one-time link that enrolls the
// browser which opens it as machine f.Machine of the caller's user.
func (sess *session) enrollLinkReq(f *protocol.Frame) (*protocol.Frame, error) {
	s := sess.srv
	s.mu.RLock()
	perr := s.state.CheckNewMachine(sess.user, f.Machine)
	s.mu.RUnlock()
	if perr != nil {
		if perr.Code == protocol.CodeConflict {
			perr.Message += "; pick another name with --name"
		}
		return nil, perr
	}
	now := time.Now()
	if err := s.admit.adminEvent(sess.user, now); err != nil {
		return nil, err
	}
	expires := now.Add(s.cfg.EnrollTTL)
	token, perr := s.enrolls.create(enrollLink{user: sess.user, machine: f.Machine, by: sess.path, expires: expires}, now)
	if perr != nil {
		return nil, perr
	}
	at := expires.UTC().Format(time.RFC3339)
	out := &protocol.Frame{Type: protocol.TEnrollToken, Token: token, Machine: f.Machine, ExpiresAt: &at}
	if s.publicBase != "" {
		out.URL = EnrollURL(s.publicBase, token)
	}
	sess.log.Info("enrollment link created", "machine", f.Machine)
	return out, nil
}

// EnrollURL is the page address that enrolls with token, under base (the
// server's public URL, or its URL as a client reached it, in http(s)
// form). The token travels in the fragment, which browsers never send to
// a server or put in a Referer.
func EnrollURL(base, token string) string {
	for len(base) > 0 && base[len(base)-1] == '/' {
		base = base[:len(base)-1]
	}
	return base + "/web/#enroll=" + token
}

// enrollKey uses up the link of enr.Token and enrolls pub under its user,
// as the session that asked for the link: the machine_added event names
// that session as its actor. Called once pub has signed the challenge.
func (s *Server) enrollKey(ctx context.Context, enr *protocol.Frame, pub ed25519.PublicKey) *protocol.Error {
	l, perr := s.enrolls.take(enr.Token, time.Now())
	if perr != nil {
		return perr
	}
	actor := projections.Actor{User: l.user, Path: l.by}
	sctx, cancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
	defer cancel()
	if err := s.submit(sctx, actor, projections.MachineAdd{Machine: l.machine, Pubkey: pub}, nil); err != nil {
		return asProtoErr(err)
	}
	s.log.Info("machine enrolled by link", "user", l.user, "machine", l.machine, "by", l.by)
	return nil
}
