package server

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/conclave/conclave/protocol"
)

// hub holds presence (live sessions by path) and channel subscriptions.
type hub struct {
	srv *Server

	// mu guards sessions, channels and every session's subs.
	mu       sync.RWMutex
	sessions map[string]*session     // path -> live session
	channels map[string]*subscribers // channel -> subscribers

	live sync.WaitGroup // one per session goroutine pair, for Shutdown
}

func newHub(s *Server) *hub {
	return &hub{
		srv:      s,
		sessions: make(map[string]*session),
		channels: make(map[string]*subscribers),
	}
}

// subscribers is one channel's subscribed sessions: a slice, which the
// fan-out walks (faster than a map), and each one's index in it, for O(1)
// removal.
type subscribers struct {
	list  []*session
	index map[*session]int
}

func (c *subscribers) add(sess *session) {
	if _, ok := c.index[sess]; ok {
		return
	}
	c.index[sess] = len(c.list)
	c.list = append(c.list, sess)
}

func (c *subscribers) remove(sess *session) {
	i, ok := c.index[sess]
	if !ok {
		return
	}
	last := len(c.list) - 1
	c.list[i] = c.list[last]
	c.index[c.list[i]] = i
	c.list[last] = nil
	c.list = c.list[:last]
	delete(c.index, sess)
}

// attach makes sess a live session, superseding the session it replaces
// or giving it another handle (claimLocked), or returns the refusal.
func (h *hub) attach(sess *session) *protocol.Error {
	h.mu.Lock()
	old, refusal := h.claimLocked(sess)
	if refusal != nil {
		h.mu.Unlock()
		return refusal
	}
	h.sessions[sess.path] = sess
	h.mu.Unlock()
	h.srv.metrics.sessions.Add(1)
	if old != nil {
		h.srv.log.Info("session superseded", "session", sess.path)
		old.kill(protocol.ReasonSuperseded)
	}
	return nil
}

// detach removes sess from presence and all its subscriptions, unless a
// newer session has taken its path.
func (h *hub) detach(sess *session) {
	h.mu.Lock()
	if h.sessions[sess.path] == sess {
		delete(h.sessions, sess.path)
	}
	for ch := range sess.subs {
		h.unsubLocked(sess, ch)
	}
	h.mu.Unlock()
}

func (h *hub) unsubLocked(sess *session, ch string) {
	delete(sess.subs, ch)
	if subs := h.channels[ch]; subs != nil {
		subs.remove(sess)
		if len(subs.list) == 0 {
			delete(h.channels, ch)
		}
	}
}

// subscribe adds sess to channel ch. It reports false for a dead session.
func (h *hub) subscribe(sess *session, ch string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sessions[sess.path] != sess {
		return false
	}
	subs := h.channels[ch]
	if subs == nil {
		subs = &subscribers{index: make(map[*session]int)}
		h.channels[ch] = subs
	}
	subs.add(sess)
	sess.subs[ch] = struct{}{}
	return true
}

func (h *hub) unsubscribe(sess *session, ch string) {
	h.mu.Lock()
	h.unsubLocked(sess, ch)
	h.mu.Unlock()
}

func (h *hub) subscribed(sess *session, ch string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	_, ok := sess.subs[ch]
	return ok
}

// publish queues an encoded delivery to every subscriber of ch except
// from. It never blocks; it returns the number of sessions queued.
func (h *hub) publish(ch string, from *session, frame []byte) int {
	var slow []*session
	n := 0
	h.mu.RLock()
	var list []*session
	if subs := h.channels[ch]; subs != nil {
		list = subs.list
	}
	for _, sub := range list {
		if sub == from {
			continue
		}
		if sub.enqueue(frame) {
			n++
		} else {
			slow = append(slow, sub)
		}
	}
	h.mu.RUnlock()
	for _, sub := range slow {
		sub.kill(protocol.ReasonSlowConsumer)
	}
	return n
}

// lookup returns the live session at path.
func (h *hub) lookup(path string) *session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.sessions[path]
}

// paths lists live session paths, all or those subscribed to ch.
func (h *hub) paths(ch string) []string {
	h.mu.RLock()
	var out []string
	if ch == "" {
		out = make([]string, 0, len(h.sessions))
		for p := range h.sessions {
			out = append(out, p)
		}
	} else {
		if subs := h.channels[ch]; subs != nil {
			for _, sub := range subs.list {
				out = append(out, sub.path)
			}
		}
	}
	h.mu.RUnlock()
	sort.Strings(out)
	return out
}

// matching returns live sessions selected by keep.
func (h *hub) matching(keep func(*session) bool) []*session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []*session
	for _, sess := range h.sessions {
		if keep(sess) {
			out = append(out, sess)
		}
	}
	return out
}

// removeFromChannel unsubscribes the sessions selected by keep from ch and
// tells each one why.
func (h *hub) removeFromChannel(ch string, keep func(*session) bool, reason string) {
	h.mu.Lock()
	var gone []*session
	var list []*session
	if subs := h.channels[ch]; subs != nil {
		list = subs.list
	}
	for _, sub := range list {
		if keep(sub) {
			gone = append(gone, sub)
		}
	}
	for _, sub := range gone {
		h.unsubLocked(sub, ch)
	}
	h.mu.Unlock()
	frame := protocol.MustEncode(&protocol.Frame{Type: protocol.TUnsubscribed, Channel: ch, Reason: reason})
	for _, sub := range gone {
		if !sub.enqueue(frame) {
			sub.kill(protocol.ReasonSlowConsumer)
		}
	}
}

// rename moves every subscription of ch to newName and tells subscribers.
func (h *hub) rename(ch, newName string) {
	h.mu.Lock()
	subs := h.channels[ch]
	delete(h.channels, ch)
	var moved []*session
	if subs != nil {
		h.channels[newName] = subs
		for _, sub := range subs.list {
			delete(sub.subs, ch)
			sub.subs[newName] = struct{}{}
			moved = append(moved, sub)
		}
	}
	h.mu.Unlock()
	frame := protocol.MustEncode(&protocol.Frame{Type: protocol.TRenamed, Channel: ch, NewName: newName})
	for _, sub := range moved {
		if !sub.enqueue(frame) {
			sub.kill(protocol.ReasonSlowConsumer)
		}
	}
}

// kill drops every session selected by keep with reason.
func (h *hub) kill(keep func(*session) bool, reason protocol.Reason) {
	for _, sess := range h.matching(keep) {
		sess.kill(reason)
	}
}

// reap drops sessions whose last inbound frame is older than cutoff.
func (h *hub) reap(cutoff time.Time) int {
	idle := h.matching(func(s *session) bool { return s.lastSeen.Load() < cutoff.UnixNano() })
	for _, sess := range idle {
		sess.kill(protocol.ReasonIdle)
	}
	return len(idle)
}

// closeAll drops every session (at shutdown).
func (h *hub) closeAll(reason protocol.Reason) {
	h.kill(func(*session) bool { return true }, reason)
}

// wait waits for every session's goroutines to end, bounded by ctx.
func (h *hub) wait(ctx context.Context) {
	done := make(chan struct{})
	go func() { h.live.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
