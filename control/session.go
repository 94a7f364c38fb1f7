package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/conclave/conclave/protocol"
)

// DefaultSessionBuffer is how many frames from the server a [Session]
// holds for its reader by default.
const DefaultSessionBuffer = 4096

// ErrOverflow is why a [Session] dropped its connection when its reader
// fell more than [SessionOptions.Buffer] frames behind: the frames already
// queued are kept, later ones are lost until the session has reconnected.
// A [Subscription] reads what its channel lost from the history.
var ErrOverflow = errors.New("the reader fell behind: events were dropped")

// SessionOptions configures [NewSession].
type SessionOptions struct {
	// Dial makes a new authenticated connection: the first one, and one
	// for each later attempt, so it may change what it dials with (a
	// handle, a pinned server id) between attempts. Required.
	Dial func(ctx context.Context) (*Conn, error)

	// Retry reports whether a failed dial or the end of a connection
	// (err) is worth another attempt; false ends the session with err.
	// Nil means [Reconnectable]. An [ErrOverflow] is always retried.
	Retry func(err error) bool

	// Buffer is how many frames from the server wait for the reader
	// before the session drops its connection ([ErrOverflow]) rather than
	// let the connection's reader wait. Default DefaultSessionBuffer.
	Buffer int

	// Backoff spaces the attempts (jittered; its zero value waits 1 s
	// doubling to 30 s). It starts again at its Min after a connection
	// that stayed up StableUptime.
	Backoff Backoff

	// StableUptime is how long a connection must stay up for the backoff
	// to start again at its Min when it ends. Zero resets the backoff at
	// every connection.
	StableUptime time.Duration

	// Logger receives debug logs. Nil discards them.
	Logger *slog.Logger
}

// Watermark is a session's position in one channel: every message up to
// Seq was seen. Synced says that nothing may have been missed since: no
// connection was lost since the watermark was last known to be complete.
// Live deliveries advance a synced watermark only.
type Watermark struct {
	Seq    uint64
	Synced bool
}

// SessionChannel is one channel a [Session] joins on every connection.
type SessionChannel struct {
	Name   string
	Joined bool // a join succeeded, and none was refused since
}

// Session is a resumable connection to one server: it dials (with
// [SessionOptions.Dial]), joins its channels again in order on every new
// connection, follows renamed and unsubscribed notices, keeps a
// [Watermark] per channel, and when a connection ends for a reason worth
// retrying it dials again after a jittered backoff. Everything it sees
// comes out of [Session.Next], in order: the connection's frames, and the
// session's own events (up, lost, joined, join refused). Its queue is
// bounded, so that the connection's reader never waits for the session's
// reader: a reader more than [SessionOptions.Buffer] frames behind makes
// the session drop the connection and dial again ([ErrOverflow]).
//
// While a new connection rejoins its channels, the frames it receives are
// held, so that the reader sees every join's outcome before any frame of
// that connection.
//
// Its methods are safe for concurrent use. [Session.Run] runs it, once.
type Session struct {
	opts  SessionOptions
	log   *slog.Logger
	retry func(error) bool

	// catchUp (a Subscription) reads each channel's history from its
	// watermark up to the join's head after every join, while the
	// connection's frames are held, and drops live deliveries the
	// watermark already covers.
	catchUp bool

	ready chan struct{} // 1-buffered: events were queued, or the session ended
	room  chan struct{} // 1-buffered: the reader took events

	// mu guards the fields below.
	mu       sync.Mutex
	conn     *Conn             // the current connection; nil while there is none
	channels []*sessionChannel // joined on every connection, in this order
	marks    map[string]*Watermark
	queue    []Event           // what Next hands out
	held     []*protocol.Frame // the current connection's frames while it rejoins
	holding  bool              // frames go to held
	frames   int               // frames from connections in queue and held
	over     bool              // the current connection overflowed: its frames are dropped
	started  bool              // Run was called
	ended    bool              // Run has returned
	err      error             // why the session ended, once ended
}

// sessionChannel is one channel of the rejoin list.
type sessionChannel struct {
	name   string
	sticky bool   // followed: stays after a refusal
	joined bool   // a join succeeded, and none was refused since
	token  string // an invite token for the next join only
	since  *int64 // catchUp: the history's start (unix ms) while there is no watermark
}

// NewSession returns a session that has not dialled yet; [Session.Run]
// runs it.
func NewSession(opts *SessionOptions) (*Session, error) {
	if opts == nil || opts.Dial == nil {
		return nil, errors.New("control: NewSession needs a Dial function")
	}
	o := *opts
	if o.Buffer <= 0 {
		o.Buffer = DefaultSessionBuffer
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	retry := o.Retry
	if retry == nil {
		retry = Reconnectable
	}
	return &Session{opts: o, log: log, retry: retry, ready: make(chan struct{}, 1), room: make(chan struct{}, 1),
		marks: make(map[string]*Watermark)}, nil
}

// Follow adds channel to the channels every connection joins, after those
// already there. A refusal to join it is reported ([EventJoinRefused]) and
// it stays: the next connection tries again, until it is unsubscribed or
// forgotten.
func (s *Session) Follow(channel string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.channelLocked(channel); c != nil {
		c.sticky = true
		return
	}
	s.channels = append(s.channels, &sessionChannel{name: channel, sticky: true})
}

// Add records a channel the caller joined on the current connection, so
// that later connections join it again. A refusal to join it again is
// reported ([EventJoinRefused]) and drops it.
func (s *Session) Add(channel string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.channelLocked(channel); c != nil {
		c.joined = true
		return
	}
	s.channels = append(s.channels, &sessionChannel{name: channel, joined: true})
}

// Forget drops channel from the channels later connections join.
func (s *Session) Forget(channel string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeLocked(channel)
}

// Channels returns the channels every connection joins, in that order.
func (s *Session) Channels() []SessionChannel {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SessionChannel, len(s.channels))
	for i, c := range s.channels {
		out[i] = SessionChannel{Name: c.name, Joined: c.joined}
	}
	return out
}

// Mark returns the watermark of channel, if the session has one.
func (s *Session) Mark(channel string) (Watermark, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.marks[channel]; m != nil {
		return *m, true
	}
	return Watermark{}, false
}

// SetMark sets the watermark of channel (after the caller read its
// history).
func (s *Session) SetMark(channel string, m Watermark) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.marks[channel] = &m
}

// Conn returns the current connection, or nil while the session has none.
// Requests may be sent on it; it must not be closed.
func (s *Session) Conn() *Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// Next returns the next event. Once the session has ended and its events
// are taken, it returns why it ended: the error that Retry refused, or
// [ErrClosed] once the context of Run has ended (queued events are then
// dropped). If ctx ends first, its error is returned.
func (s *Session) Next(ctx context.Context) (Event, error) {
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			ev := s.queue[0]
			s.queue[0] = Event{}
			s.queue = s.queue[1:]
			if ev.counted {
				s.frames--
				ev.counted = false
			}
			s.mu.Unlock()
			signal(s.room)
			return ev, nil
		}
		if s.ended {
			err := s.err
			s.mu.Unlock()
			signal(s.ready) // for another caller of Next
			return Event{}, err
		}
		s.mu.Unlock()
		select {
		case <-s.ready:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// Run dials, serves the connection and dials again until ctx ends (it
// then returns [ErrClosed]) or Retry refuses an error (it returns that
// error). The first attempt is made at once. Call it once.
func (s *Session) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("control: Session.Run called twice")
	}
	s.started = true
	s.mu.Unlock()
	err := s.loop(ctx)
	s.mu.Lock()
	if ctx.Err() != nil {
		err = ErrClosed
		s.queue = nil
	}
	s.conn, s.ended, s.err = nil, true, err
	s.mu.Unlock()
	signal(s.ready)
	return err
}

// loop is Run's dial, serve and redial cycle.
func (s *Session) loop(ctx context.Context) error {
	for {
		conn, err := s.opts.Dial(ctx)
		if ctx.Err() != nil {
			if conn != nil {
				conn.Close()
			}
			return ctx.Err()
		}
		if err != nil {
			if !s.retry(err) {
				return err
			}
			d := s.opts.Backoff.Next()
			s.log.Debug("connect failed; retrying", "err", err, "retry_in", d)
			if err := s.emit(ctx, Event{Kind: EventDialFailed, Err: err, RetryIn: d}); err != nil {
				return err
			}
			if !sleepCtx(ctx, d) {
				return ctx.Err()
			}
			continue
		}
		upAt := time.Now()
		cause, err := s.serve(ctx, conn)
		if err != nil {
			return err
		}
		uptime := time.Since(upAt)
		if uptime >= s.opts.StableUptime {
			s.opts.Backoff.Reset()
		}
		d := s.opts.Backoff.Next()
		s.log.Debug("connection lost; reconnecting", "err", cause, "uptime", uptime, "retry_in", d)
		if err := s.emit(ctx, Event{Kind: EventLost, Conn: conn, Err: cause, RetryIn: d, Uptime: uptime}); err != nil {
			return err
		}
		if !sleepCtx(ctx, d) {
			return ctx.Err()
		}
	}
}

// serve runs one connection: it rejoins the channels while the
// connection's frames are held, then passes them on until the connection
// ends. It returns why the connection ended when that is worth another
// attempt, else (err) why the session ends.
func (s *Session) serve(ctx context.Context, conn *Conn) (cause, err error) {
	s.mu.Lock()
	s.conn, s.holding, s.over = conn, true, false
	s.mu.Unlock()
	done := make(chan struct{})
	go s.pump(conn, done)
	if err := s.emit(ctx, Event{Kind: EventUp, Conn: conn}); err != nil {
		return nil, s.abandon(conn, done, err)
	}
	if err := s.rejoin(ctx, conn); err != nil {
		var fe *fatalError
		if ctx.Err() != nil || errors.As(err, &fe) {
			return nil, s.abandon(conn, done, err)
		}
		return s.lost(conn, done, err)
	}
	s.mu.Lock()
	s.releaseLocked(false)
	s.mu.Unlock()
	signal(s.ready)
	select {
	case <-done:
	case <-ctx.Done():
		return nil, s.abandon(conn, done, ctx.Err())
	}
	return s.lost(conn, done, nil)
}

// fatalError ends the session from inside a connection's rejoin (a
// catch-up the server refuses for good).
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

// abandon closes conn for good and returns err, the session's end.
func (s *Session) abandon(conn *Conn, done <-chan struct{}, err error) error {
	conn.Close()
	<-done
	var fe *fatalError
	if errors.As(err, &fe) {
		err = fe.err
	}
	s.mu.Lock()
	s.conn = nil
	s.mu.Unlock()
	return err
}

// lost decides what the end of conn (or reqErr, a request's failure on
// it) means: the cause to report before dialling again, or (err) the
// session's end.
func (s *Session) lost(conn *Conn, done <-chan struct{}, reqErr error) (cause, err error) {
	conn.Close()
	<-done
	cause = conn.Err()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn = nil
	if s.holding {
		// Frames held while rejoining: a catch-up that did not finish
		// reads the channel messages again, so only the rest goes on.
		s.releaseLocked(s.catchUp)
		signal(s.ready)
	}
	switch {
	case s.over:
		cause = ErrOverflow
	case cause == nil || errors.Is(cause, ErrClosed):
		cause = reqErr
	}
	if cause == nil {
		cause = ErrNoResponse
	}
	if !errors.Is(cause, ErrOverflow) && !s.retry(cause) {
		return nil, cause
	}
	for _, m := range s.marks {
		m.Synced = false // messages may be missed until the next catch-up
	}
	return cause, nil
}

// rejoin joins the channels on conn, in order, and catches each up when
// the session does. A refusal is reported and goes on to the next
// channel; an error returned ends the connection (a *fatalError, the
// session).
func (s *Session) rejoin(ctx context.Context, conn *Conn) error {
	s.mu.Lock()
	list := slices.Clone(s.channels)
	s.mu.Unlock()
	for _, c := range list {
		s.mu.Lock()
		if !slices.Contains(s.channels, c) {
			s.mu.Unlock()
			continue // forgotten, or unsubscribed, meanwhile
		}
		name, token := c.name, c.token
		s.mu.Unlock()
		r, err := conn.Request(ctx, &protocol.Frame{Type: protocol.TJoin, Channel: name, Token: token})
		if err == nil && r.Type != protocol.TJoined {
			err = fmt.Errorf("unexpected %s reply to join", r.Type)
		}
		var pe *protocol.Error
		if err != nil && (!errors.As(err, &pe) || errors.Is(err, ErrNoResponse)) {
			return err // the connection failed
		}
		if err != nil && s.catchUp && Reconnectable(pe) {
			return err // a temporary refusal: try again on another connection
		}
		s.mu.Lock()
		c.token = ""
		if err != nil {
			was := c.joined
			if c.sticky {
				c.joined = false
			} else {
				s.removeLocked(c.name)
			}
			s.mu.Unlock()
			s.log.Debug("join refused", "channel", name, "err", err)
			if err := s.emit(ctx, Event{Kind: EventJoinRefused, Channel: name, Err: err, Rejoin: was}); err != nil {
				return err
			}
			continue
		}
		c.joined = true
		s.mu.Unlock()
		if err := s.emit(ctx, Event{Kind: EventJoined, Channel: name, Frame: r}); err != nil {
			return err
		}
		if s.catchUp {
			if err := s.catchUpChannel(ctx, conn, c, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// resumeSlack is how far before its first join a subscription without a
// start position reads the history after a reconnect, when the server
// gives no head and no message came (client and server clocks differ).
const resumeSlack = time.Second

// catchUpChannel passes on channel c's history after its watermark (or
// from its start time) up to the head that joined carries: exactly what
// came before the live deliveries of this join. A server that gives no
// head is read to its end. A channel with no position yet starts live at
// this join.
func (s *Session) catchUpChannel(ctx context.Context, conn *Conn, c *sessionChannel, joined *protocol.Frame) error {
	var head *uint64
	if joined.Seq != 0 {
		h := joined.Seq
		head = &h
	}
	s.mu.Lock()
	name := c.name
	m := s.marks[name]
	if m == nil && c.since == nil {
		// No position: live from this join on, and after a reconnect
		// from here.
		if head != nil {
			s.marks[name] = &Watermark{Seq: *head, Synced: true}
		} else {
			since := time.Now().Add(-resumeSlack).UnixMilli()
			c.since = &since
		}
		s.mu.Unlock()
		return nil
	}
	var last uint64
	if m != nil {
		last = m.Seq
	}
	s.mu.Unlock()
	if head != nil && *head < last {
		// The server lost numbers it had handed out (a crash before they
		// were stored): go on from its head.
		s.log.Warn("the server's head is below the last message seen", "head", *head, "seq", last)
		s.SetMark(name, Watermark{Seq: *head, Synced: true})
		return s.emit(ctx, Event{Kind: EventRewound, Frame: &protocol.Frame{Type: protocol.TJoined, Channel: name, Seq: *head}})
	}
	req := &protocol.Frame{Type: protocol.TReadSince, UntilSeq: head}
	if last > 0 {
		req.AfterSeq = &last
	} else {
		req.SinceMs = c.since
	}
	renamed := false
	for {
		req.Channel = name
		r, err := conn.Request(ctx, req)
		if err == nil && r.Type != protocol.THistory {
			err = fmt.Errorf("unexpected %s reply to read_since", r.Type)
		}
		if err != nil {
			// The channel may have been renamed under us: its notice is
			// then held.
			var pe *protocol.Error
			if !renamed && errors.As(err, &pe) && pe.Code == protocol.CodeNotFound {
				if notice := s.takeRename(name); notice != nil {
					renamed, name = true, notice.NewName
					if err := s.emit(ctx, Event{Kind: EventRenamed, Frame: notice}); err != nil {
						return err
					}
					continue
				}
			}
			var te *TimeoutError
			if errors.As(err, &pe) || errors.As(err, &te) {
				err = fmt.Errorf("read the history of #%s: %w", name, err)
			}
			if pe != nil && !errors.Is(err, ErrNoResponse) && !Reconnectable(pe) {
				return &fatalError{err}
			}
			return err
		}
		for i := range r.Messages {
			hm := &r.Messages[i]
			if !s.advance(name, hm.Seq) {
				continue
			}
			ev := Event{Kind: EventMessage, History: true, Frame: &protocol.Frame{Type: protocol.TChannelMsg,
				Channel: r.Channel, From: hm.From, Body: hm.Body, Sealed: hm.Sealed, TsMs: hm.TsMs, Seq: hm.Seq}}
			if hm.Gap {
				ev = Event{Kind: EventGap, Frame: &protocol.Frame{Type: protocol.TChannelMsg, Channel: r.Channel, Seq: hm.Seq}}
			}
			if err := s.emit(ctx, ev); err != nil {
				return err
			}
		}
		if !r.More || (req.AfterSeq != nil && r.NextSeq <= *req.AfterSeq) {
			break
		}
		next := r.NextSeq
		req.AfterSeq, req.SinceMs = &next, nil
	}
	if head != nil {
		s.advance(name, *head) // what follows is live
	}
	s.mu.Lock()
	if m := s.marks[name]; m != nil {
		m.Synced = true
	}
	s.mu.Unlock()
	return nil
}

// advance moves channel's watermark to seq and reports whether seq was
// past it.
func (s *Session) advance(channel string, seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.marks[channel]
	if m == nil {
		s.marks[channel] = &Watermark{Seq: seq, Synced: true}
		return true
	}
	if seq <= m.Seq {
		return false
	}
	m.Seq = seq
	return true
}

// takeRename removes a held renamed notice of channel, applies it and
// returns it, or returns nil.
func (s *Session) takeRename(channel string) *protocol.Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.held {
		if f.Type == protocol.TRenamed && f.Channel == channel && f.NewName != "" {
			s.held = slices.Delete(s.held, i, i+1)
			s.frames--
			s.renameLocked(f.Channel, f.NewName)
			return f
		}
	}
	return nil
}

// pump moves conn's frames into the queue until the connection ends, so
// that its reader never waits; it closes done when it returns.
func (s *Session) pump(conn *Conn, done chan<- struct{}) {
	defer close(done)
	for f := range conn.Events() {
		s.mu.Lock()
		if s.over {
			s.mu.Unlock()
			continue
		}
		if s.frames >= s.opts.Buffer {
			s.over = true
			s.mu.Unlock()
			// Close stops the reader, which then gives up handing events
			// over: it never waits on this loop past Close.
			conn.Close()
			continue
		}
		s.frames++
		if s.holding {
			s.held = append(s.held, f)
		} else {
			s.admitLocked(f)
		}
		s.mu.Unlock()
		signal(s.ready)
	}
}

// releaseLocked passes on the held frames (without channel messages when
// dropMessages) and stops holding.
func (s *Session) releaseLocked(dropMessages bool) {
	for _, f := range s.held {
		if dropMessages && f.Type == protocol.TChannelMsg {
			s.frames--
			continue
		}
		s.admitLocked(f)
	}
	s.held, s.holding = nil, false
}

// admitLocked queues a frame of the connection (counted in frames),
// applying what it says to the session first: a delivery moves its
// channel's watermark (or, with catchUp, is dropped if the history passed
// it on already), a rename renames, an unsubscribed notice drops the
// channel.
func (s *Session) admitLocked(f *protocol.Frame) {
	kind := EventFrame
	switch f.Type {
	case protocol.TChannelMsg:
		m := s.marks[f.Channel]
		if s.catchUp && m != nil && f.Seq != 0 && f.Seq <= m.Seq {
			s.frames--
			return
		}
		switch {
		case m == nil:
			s.marks[f.Channel] = &Watermark{Seq: f.Seq, Synced: true}
		case m.Synced:
			m.Seq = max(m.Seq, f.Seq)
		}
		kind = EventMessage
	case protocol.TRenamed:
		if f.NewName != "" {
			s.renameLocked(f.Channel, f.NewName)
			kind = EventRenamed
		}
	case protocol.TUnsubscribed:
		s.removeLocked(f.Channel)
		kind = EventUnsubscribed
	}
	s.queue = append(s.queue, Event{Kind: kind, Frame: f, counted: true})
}

// emit queues one of the session's own events, waiting while the queue
// is full.
func (s *Session) emit(ctx context.Context, ev Event) error {
	for {
		s.mu.Lock()
		if len(s.queue) < s.opts.Buffer {
			s.queue = append(s.queue, ev)
			s.mu.Unlock()
			signal(s.ready)
			return nil
		}
		s.mu.Unlock()
		select {
		case <-s.room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *Session) channelLocked(name string) *sessionChannel {
	for _, c := range s.channels {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (s *Session) removeLocked(name string) {
	s.channels = slices.DeleteFunc(s.channels, func(c *sessionChannel) bool { return c.name == name })
}

// renameLocked follows a rename: the channel keeps its place in the
// rejoin list and its watermark.
func (s *Session) renameLocked(old, renamed string) {
	if c := s.channelLocked(old); c != nil {
		s.removeLocked(renamed)
		c.name = renamed
	}
	if m, ok := s.marks[old]; ok {
		delete(s.marks, old)
		s.marks[renamed] = m
	}
}

// signal wakes the waiter of a 1-buffered channel, if it is not awake.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
