package server

import (
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/conclave/conclave/protocol"
)

// Two sessions, one handle. A client process sends the same random
// hello.instance on every connection it makes, so the server can tell a
// process taking back its own session (after a drop the server has not
// noticed yet: a half-open connection) from a second process asking for
// a handle that is in use:
//
//   - no instance (an older client), or the holder has the same instance:
//     the newcomer supersedes the holder, as always;
//   - another instance and a defaulted handle (hello.session_defaulted):
//     the newcomer takes handle-2, handle-3, … (the first one free, or
//     the one its own instance still holds); the holder is not touched;
//   - another instance and a handle the user chose: refused with
//     conflict, naming the holder.

// claim is hello's part of a session that claimLocked uses.
type claim struct {
	handle    string // hello.session
	instance  string
	defaulted bool
	client    string
	since     time.Time // when the session was established
}

func newClaim(hello *protocol.Frame) claim {
	return claim{handle: hello.Session, instance: hello.Instance, defaulted: hello.SessionDefaulted,
		client: hello.Client, since: time.Now()}
}

// claimLocked decides the path sess takes, which may change sess's
// handle to a suffixed one, and returns the live session it supersedes,
// if any, or the refusal. The caller holds h.mu.
func (h *hub) claimLocked(sess *session) (old *session, refusal *protocol.Error) {
	holder := h.sessions[sess.path]
	if holder == nil || sess.claim.instance == "" || holder.claim.instance == sess.claim.instance {
		return holder, nil
	}
	if !sess.claim.defaulted {
		return nil, handleTaken(holder, sess.claim.handle)
	}
	// At most len(h.sessions)-1 of these len(h.sessions) candidates are
	// taken (holder is one of the sessions), so one is free.
	free := ""
	for n := 2; n <= len(h.sessions)+1; n++ {
		p := protocol.SessionPath{User: sess.user, Machine: sess.machine, Session: suffixed(sess.claim.handle, n)}.String()
		other := h.sessions[p]
		if other == nil {
			if free == "" {
				free = p
			}
			continue
		}
		if other.claim.instance == sess.claim.instance {
			h.srv.log.Info("session handle taken back", "session", p, "asked", sess.path)
			sess.setPath(p)
			return other, nil
		}
	}
	h.srv.log.Info("session handle suffixed", "session", free, "asked", sess.path, "holder_client", holder.claim.client)
	sess.setPath(free)
	return nil, nil
}

// handleTaken is the refusal of a chosen handle that another process
// holds.
func handleTaken(holder *session, handle string) *protocol.Error {
	client := holder.claim.client
	if client == "" {
		client = "a client that sent no name"
	}
	return protocol.Errorf(protocol.CodeConflict,
		"session handle %q is in use by another process of this machine: %s (%s, connected %s ago); stop that one or choose another handle",
		handle, holder.path, client, time.Since(holder.claim.since).Round(time.Second))
}

// setPath gives sess another handle, before it is attached.
func (sess *session) setPath(path string) {
	sess.path = path
	sess.actor.Path = path
	sess.log = sess.srv.log.With("session", path)
}

// suffixed returns base-n, base cut on a rune boundary (and trailing
// spaces trimmed) so that the result is a valid name of at most
// protocol.MaxNameLen bytes.
func suffixed(base string, n int) string {
	suffix := "-" + strconv.Itoa(n)
	for len(base) > protocol.MaxNameLen-len(suffix) {
		_, size := utf8.DecodeLastRuneInString(base)
		base = base[:len(base)-size]
	}
	return strings.TrimRightFunc(base, unicode.IsSpace) + suffix
}
