package bridge

import (
	"errors"

	"github.com/conclave/conclave/control"
	"github.com/conclave/conclave/protocol"
)

// The server referees two sessions asking for one handle (docs/PROTOCOL.md,
// "Two sessions, one handle"): a defaulted handle held by another process
// comes back suffixed in established, and a chosen one (--as) is refused
// with conflict. These tell the session, once each.

// handleGiven tells the session once that the server gave this link
// another handle than the defaulted name it dialled with, because another
// process (usually a second agent in the same directory) holds that name.
// The holder is told nothing.
func (l *link) handleGiven(conn *control.Conn, dialled string, fl *flapper) {
	fl.refused = false
	p, err := protocol.ParseSessionPath(conn.Path())
	if err != nil || p.Session == dialled {
		fl.given = ""
		return
	}
	if p.Session == fl.given {
		return
	}
	fl.given = p.Session
	l.log.Info("handle suffixed by the server", "asked", dialled, "session", conn.Path())
	l.b.tell(notice(l.url, kindLink, "",
		"Another session of yours on this machine (probably a second agent in this directory) holds the handle "+code(dialled)+
			" on "+code(l.url)+", so this session is "+code(conn.Path())+" there; others reach it by that name. "+
			"Start the bridge with `--as HANDLE` to pin a name of your own."))
}

// handleInUse tells the session once that the server refused the chosen
// handle because another live process holds it. The link keeps retrying
// and connects once the handle is free; the Reconnected notice says so.
func (l *link) handleInUse(err error, handle string, fl *flapper) {
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeConflict || fl.refused {
		return
	}
	fl.refused, fl.disconnected = true, true
	l.b.tell(notice(l.url, kindLink, "",
		"Could not log in to "+code(l.url)+" as "+code(handle)+": "+pe.Message+
			". The bridge keeps trying and connects once that handle is free; to run both, start this one with another `--as HANDLE`."))
}
