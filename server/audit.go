package server

import (
	"sync"

	"github.com/conclave/conclave/projections"
	"github.com/conclave/conclave/protocol"
)

// auditScanMax bounds the events one audit request looks at, so a channel
// admin's sparse query cannot hold the log for long; the reply then says
// more and where to continue.
const auditScanMax = 20000

// auditIndex maps every event to the id of the channel it concerns (0 for
// none), following renames, so that a channel admin can be served the
// events of their channels under all of their names. It is built lazily
// on the first audit request and extended on later ones.
type auditIndex struct {
	mu    sync.Mutex
	upto  uint64
	names map[string]uint64 // channel name -> id, as of seq upto
	cids  []uint64          // cids[seq-1] = channel id of event seq
}

// update extends the index to the end of the log.
func (s *Server) auditUpdate() error {
	ix := &s.auditIx
	last := s.store.log.LastSeq()
	if ix.names == nil {
		ix.names = make(map[string]uint64)
	}
	for seq := ix.upto + 1; seq <= last; seq++ {
		rec, err := s.store.log.Read(seq)
		if err != nil {
			return err
		}
		fields := projections.DecodeFields(rec.Data)
		ch, nn := fields.Channel, fields.NewName
		var cid uint64
		switch rec.Type {
		case projections.EvChannelCreated:
			cid = seq
			ix.names[ch] = seq
		case projections.EvChannelRenamed:
			cid = ix.names[ch]
			delete(ix.names, ch)
			ix.names[nn] = cid
		case projections.EvChannelDeleted:
			cid = ix.names[ch]
			delete(ix.names, ch)
		default:
			if ch != "" {
				cid = ix.names[ch]
			}
		}
		ix.cids = append(ix.cids, cid)
		ix.upto = seq
	}
	return nil
}

// audit serves a page of the event log: everything to server admins, the
// events of the channels they administer to channel admins.
func (sess *session) audit(f *protocol.Frame) (*protocol.Frame, error) {
	s := sess.srv
	if s.store == nil {
		return nil, protocol.Errorf(protocol.CodeNotFound, "this server is ephemeral: it keeps no event log")
	}
	// Which channels (by id) may this session see, and which one is asked for?
	s.mu.RLock()
	allowed := map[uint64]bool{}
	for _, c := range s.state.Channels() {
		if s.state.CanAdminister(sess.actor, c.Name) {
			allowed[c.ID] = true
		}
	}
	var want uint64
	if f.Channel != "" {
		c, ok := s.state.Channel(f.Channel)
		if !ok || !s.state.Visible(sess.actor, f.Channel) {
			s.mu.RUnlock()
			return nil, protocol.NoSuchChannel(f.Channel)
		}
		want = c.ID
	}
	s.mu.RUnlock()
	if want != 0 && !allowed[want] {
		return nil, protocol.Errorf(protocol.CodeUnauthorized, "not authorized: you do not administer channel %q", f.Channel)
	}
	showTokens := f.ShowTokens && sess.actor.ServerAdmin

	ix := &s.auditIx
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if err := s.auditUpdate(); err != nil {
		sess.log.Error("audit read failed", "err", err)
		return nil, protocol.Errorf(protocol.CodeInternal, "could not read the event log")
	}
	limit := f.Limit
	if limit <= 0 || limit > protocol.HistoryPageMax {
		limit = protocol.HistoryPageMax
	}
	out := &protocol.Frame{Type: protocol.TAuditEvents, Events: []protocol.AuditEvent{}}
	seq := uint64(0)
	if f.AfterSeq != nil {
		seq = *f.AfterSeq
	}
	out.NextSeq = seq
	scanned := 0
	for seq < ix.upto && len(out.Events) < limit && scanned < auditScanMax {
		seq++
		scanned++
		out.NextSeq = seq
		cid := ix.cids[seq-1]
		if want != 0 && cid != want {
			continue
		}
		if !sess.actor.ServerAdmin && !allowed[cid] {
			continue
		}
		rec, err := s.store.log.Read(seq)
		if err != nil {
			return nil, protocol.Errorf(protocol.CodeInternal, "could not read the event log")
		}
		if (f.SinceMs != nil && rec.TimeMs < *f.SinceMs) || (f.UntilMs != nil && rec.TimeMs > *f.UntilMs) ||
			(f.EventType != "" && rec.Type != f.EventType) || (f.User != "" && actorUser(rec.Actor) != f.User) {
			continue
		}
		data := rec.Data
		if !showTokens {
			data = projections.RedactData(data)
		}
		out.Events = append(out.Events, protocol.AuditEvent{Seq: rec.Seq, TsMs: rec.TimeMs, Actor: rec.Actor, Type: rec.Type, Data: data})
	}
	out.More = seq < ix.upto
	return out, nil
}

// actorUser is the user part of an actor path ("server" stays "server").
func actorUser(actor string) string {
	for i := 0; i < len(actor); i++ {
		if actor[i] == '/' {
			return actor[:i]
		}
	}
	return actor
}
