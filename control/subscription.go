package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/conclave/conclave/protocol"
)

// DefaultSubscriptionBuffer is how many unprompted frames a
// [Subscription] holds for its reader by default.
const DefaultSubscriptionBuffer = 4096

// ErrOverflow is why a [Subscription] dropped its connection when its
// reader fell more than [SubscribeOptions.Buffer] frames behind. The
// subscription reconnects and reads what it missed of its channel from the
// history; whispers and notices that were waiting are lost.
var ErrOverflow = errors.New("the reader fell behind: events were dropped; catching up from the history")

// SubscribeOptions configures [Subscribe].
type SubscribeOptions struct {
	// Dial makes a new authenticated connection: the first one, and each
	// reconnection. Required.
	Dial func(ctx context.Context) (*Conn, error)

	// Channel is the channel to follow. Required.
	Channel string

	// Token is an invite token for the first join of a private channel.
	Token string

	// AfterSeq starts with the channel's messages numbered after it, read
	// from the history. SinceMs (when AfterSeq is 0) starts with those
	// posted at or after that time (unix ms). With neither, the
	// subscription starts at the join: no history.
	AfterSeq uint64
	SinceMs  *int64

	// Buffer is how many unprompted frames wait for the reader before the
	// subscription drops its connection and catches up later from the
	// history ([ErrOverflow]). Default DefaultSubscriptionBuffer.
	Buffer int

	// Backoff spaces reconnection attempts (jittered; its zero value
	// waits 1 s doubling to 30 s).
	Backoff Backoff

	// Logger receives debug logs. Nil discards them.
	Logger *slog.Logger
}

// EventKind says what an [Event] carries.
type EventKind int

// Event kinds.
const (
	// EventMessage: a message of the channel, Frame a channel_msg,
	// delivered live or (History) read from the history. Each message
	// comes once, in seq order, across reconnections.
	EventMessage EventKind = iota + 1
	// EventGap: the channel numbered Frame.Seq but the history does not
	// hold it (a post the server could not store, a damaged record).
	EventGap
	// EventFrame: any other unprompted frame (a whisper, an unsubscribed
	// or renamed notice, a permission frame, an error that announces a
	// drop). A rename of the channel is followed before it is passed on.
	EventFrame
	// EventLost: the connection ended for a reason worth retrying (Err);
	// the subscription is reconnecting.
	EventLost
	// EventResumed: a new connection joined the channel again; catching
	// up follows, as EventMessage with History set.
	EventResumed
	// EventRenamed: the channel was renamed (Frame, the renamed notice);
	// the subscription follows it.
	EventRenamed
	// EventRewound: the server's head is below the last message passed
	// on (it lost messages it had delivered, in a crash): numbering goes
	// on from Frame.Seq, the new head.
	EventRewound
)

// Event is one thing a [Subscription] reports.
type Event struct {
	Kind    EventKind
	Frame   *protocol.Frame // EventMessage, EventGap, EventFrame, EventRewound
	History bool            // EventMessage: read from the history
	Err     error           // EventLost: why
}

// Subscription follows one channel across connections: it joins, reads
// the history up to the join's head (until_seq) and then passes on the
// live deliveries, so that each message comes exactly once and in order;
// when the connection ends for a reason worth retrying it reconnects
// (with [SubscribeOptions.Backoff]), joins again and catches up after the
// last message it passed on. It follows renames of the channel.
//
// Its methods are safe for concurrent use. One goroutine runs the
// connection; [Subscription.Next] hands its events over. Always call
// [Subscription.Close].
type Subscription struct {
	opts   SubscribeOptions
	log    *slog.Logger
	events chan Event    // unbuffered: the run goroutine waits for Next
	done   chan struct{} // closed when run has returned
	cancel context.CancelFunc

	// mu guards the fields below.
	mu      sync.Mutex
	conn    *Conn  // the current connection, nil while reconnecting
	channel string // the channel's current name
	err     error  // why the subscription ended, once done is closed

	// Only the run goroutine touches these.
	lastSeq uint64 // the newest message passed on
	since   *int64 // where a catch-up starts while lastSeq is 0
}

// resumeSlack is how far before its first join a subscription without a
// start position reads the history after a reconnect, when the server
// gives no head and no message came (client and server clocks differ).
const resumeSlack = time.Second

// Subscribe dials with opts.Dial and joins opts.Channel. An error from
// either is returned as it is (no retry: a first connection that fails is
// the caller's to report); later losses are retried. It returns the
// joined subscription; its catch-up and live stream come from
// [Subscription.Next].
func Subscribe(ctx context.Context, opts *SubscribeOptions) (*Subscription, error) {
	o := *opts
	if o.Dial == nil || o.Channel == "" {
		return nil, errors.New("control: Subscribe needs Dial and Channel")
	}
	if o.Buffer <= 0 {
		o.Buffer = DefaultSubscriptionBuffer
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Subscription{opts: o, log: log, events: make(chan Event), done: make(chan struct{}),
		channel: o.Channel, lastSeq: o.AfterSeq, since: o.SinceMs}
	started := time.Now().Add(-resumeSlack).UnixMilli()
	conn, err := o.Dial(ctx)
	if err != nil {
		return nil, err
	}
	q := s.watch(conn)
	head, err := s.join(ctx, conn, o.Token)
	if err != nil {
		conn.Close()
		q.wait()
		return nil, err
	}
	life, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.conn = conn
	liveOnly := s.lastSeq == 0 && s.since == nil
	if liveOnly {
		// No history wanted: live from the join on, and after a
		// reconnect from there.
		if head != nil {
			s.lastSeq = *head
		} else {
			s.since = &started // a server that gives no head
		}
	}
	go s.run(life, conn, q, head, liveOnly)
	return s, nil
}

// Conn returns the current connection, or nil while the subscription
// reconnects. Requests may be sent on it; it must not be closed.
func (s *Subscription) Conn() *Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// Channel returns the channel's current name (it follows renames).
func (s *Subscription) Channel() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.channel
}

// Next returns the next event. Once the subscription has ended it returns
// why: a refusal that will not go away (the server dropped the session
// for good, a rejoin refused, an [UnsubscribedError]), or [ErrClosed]
// after Close. If ctx ends first, its error is returned.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	select {
	case ev, ok := <-s.events:
		if ok {
			return ev, nil
		}
	case <-ctx.Done():
		return Event{}, ctx.Err()
	}
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return Event{}, s.err
}

// Close ends the subscription and its connection and waits for its
// goroutines. It is idempotent.
func (s *Subscription) Close() error {
	s.cancel()
	for range s.events { // release a run waiting to hand over
	}
	<-s.done
	return nil
}

// UnsubscribedError ends a subscription whose channel the server took
// away (kick, ban, access-list removal, deletion).
type UnsubscribedError struct {
	Channel string
	Reason  string
}

func (e *UnsubscribedError) Error() string {
	reason := e.Reason
	if reason == "" {
		reason = "no reason given"
	}
	return fmt.Sprintf("unsubscribed from #%s: %s", e.Channel, reason)
}

// run owns the connections: it streams one until it ends, then
// reconnects, until the subscription ends.
func (s *Subscription) run(ctx context.Context, conn *Conn, q *pending, head *uint64, liveOnly bool) {
	err := s.serve(ctx, conn, q, head, liveOnly)
	for err == nil {
		err = s.reconnect(ctx)
	}
	s.mu.Lock()
	s.conn = nil
	if ctx.Err() != nil {
		err = ErrClosed
	}
	s.err = err
	s.mu.Unlock()
	close(s.events)
	close(s.done)
}

// serve catches up on conn and streams until the connection ends. It
// returns nil when the subscription should reconnect, else why it ends.
func (s *Subscription) serve(ctx context.Context, conn *Conn, q *pending, head *uint64, liveOnly bool) error {
	defer func() {
		conn.Close()
		q.wait()
	}()
	if !liveOnly {
		if err := s.catchUp(ctx, conn, q, head); err != nil {
			return s.ended(ctx, conn, q, err)
		}
	}
	for {
		frames, closed := q.take()
		for _, f := range frames {
			if err := s.live(ctx, f); err != nil {
				return err
			}
		}
		if closed {
			return s.ended(ctx, conn, q, nil)
		}
		select {
		case <-q.ready:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ended decides what the end of conn (or err, a request's failure on it)
// means: nil to reconnect, after telling the reader; else the error that
// ends the subscription.
func (s *Subscription) ended(ctx context.Context, conn *Conn, q *pending, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var pe *protocol.Error
	if err != nil && !errors.Is(err, ErrNoResponse) && errors.As(err, &pe) {
		if !Reconnectable(pe) {
			return err
		}
	}
	conn.Close()
	q.wait()
	cause := conn.Err()
	if q.overflowed() {
		cause = ErrOverflow
	} else if cause == nil || errors.Is(cause, ErrClosed) {
		cause = err
	}
	if cause == nil {
		cause = ErrNoResponse
	}
	if !errors.Is(cause, ErrOverflow) && !Reconnectable(cause) {
		return cause
	}
	s.mu.Lock()
	s.conn = nil
	s.mu.Unlock()
	s.log.Debug("subscription lost its connection", "channel", s.Channel(), "err", cause)
	return s.hand(ctx, Event{Kind: EventLost, Err: cause})
}

// reconnect dials (waiting the backoff's delays) and joins again until it
// has a connection, then serves it. It returns nil to go round again.
func (s *Subscription) reconnect(ctx context.Context) error {
	for {
		d := s.opts.Backoff.Next()
		s.log.Debug("reconnecting", "in", d.String())
		if !sleepCtx(ctx, d) {
			return ctx.Err()
		}
		conn, err := s.opts.Dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !Reconnectable(err) {
				return err
			}
			s.log.Debug("reconnect failed", "err", err)
			continue
		}
		q := s.watch(conn)
		head, err := s.join(ctx, conn, "")
		if err != nil {
			var pe *protocol.Error
			if errors.As(err, &pe) && !errors.Is(err, ErrNoResponse) && !Reconnectable(pe) {
				conn.Close()
				q.wait()
				return fmt.Errorf("join #%s again: %w", s.Channel(), err)
			}
			if e := s.ended(ctx, conn, q, err); e != nil {
				return e
			}
			continue
		}
		s.opts.Backoff.Reset()
		s.mu.Lock()
		s.conn = conn
		s.mu.Unlock()
		if err := s.hand(ctx, Event{Kind: EventResumed}); err != nil {
			conn.Close()
			q.wait()
			return err
		}
		return s.serve(ctx, conn, q, head, false)
	}
}

// join joins the channel on conn and returns its head (nil from a server
// that sends none).
func (s *Subscription) join(ctx context.Context, conn *Conn, token string) (*uint64, error) {
	r, err := conn.Request(ctx, &protocol.Frame{Type: protocol.TJoin, Channel: s.Channel(), Token: token})
	if err != nil {
		return nil, err
	}
	if r.Type != protocol.TJoined {
		return nil, fmt.Errorf("unexpected %s reply to join", r.Type)
	}
	if r.Seq == 0 {
		return nil, nil
	}
	head := r.Seq
	return &head, nil
}

// catchUp passes on the channel's history after the last message passed
// on (or from the start position) up to head: exactly what came before
// the live deliveries of this join. A server that gives no head (nil) is
// read to its end.
func (s *Subscription) catchUp(ctx context.Context, conn *Conn, q *pending, head *uint64) error {
	if head != nil && *head < s.lastSeq {
		// The server lost numbers it had handed out (a crash before they
		// were stored): go on from its head.
		s.log.Warn("the server's head is below the last message seen", "head", *head, "seq", s.lastSeq)
		s.lastSeq = *head
		return s.hand(ctx, Event{Kind: EventRewound, Frame: &protocol.Frame{Type: protocol.TJoined, Channel: s.Channel(), Seq: *head}})
	}
	req := &protocol.Frame{Type: protocol.TReadSince, UntilSeq: head}
	if s.lastSeq > 0 {
		after := s.lastSeq
		req.AfterSeq = &after
	} else {
		req.SinceMs = s.since
	}
	renamed := false
	for {
		req.Channel = s.Channel()
		r, err := conn.Request(ctx, req)
		if err == nil && r.Type != protocol.THistory {
			err = fmt.Errorf("unexpected %s reply to read_since", r.Type)
		}
		if err != nil {
			// The channel may have been renamed under us: its notice is
			// then waiting in q.
			var pe *protocol.Error
			if !renamed && errors.As(err, &pe) && pe.Code == protocol.CodeNotFound {
				if notice := q.takeRename(s.Channel()); notice != nil {
					renamed = true
					if err := s.renamed(ctx, notice); err != nil {
						return err
					}
					continue
				}
			}
			var te *TimeoutError
			if errors.As(err, &pe) || errors.As(err, &te) {
				return fmt.Errorf("read the history of #%s: %w", s.Channel(), err)
			}
			return err
		}
		for i := range r.Messages {
			m := &r.Messages[i]
			if m.Seq <= s.lastSeq {
				continue
			}
			s.lastSeq = m.Seq
			ev := Event{Kind: EventMessage, History: true, Frame: &protocol.Frame{Type: protocol.TChannelMsg,
				Channel: r.Channel, From: m.From, Body: m.Body, Sealed: m.Sealed, TsMs: m.TsMs, Seq: m.Seq}}
			if m.Gap {
				ev = Event{Kind: EventGap, Frame: &protocol.Frame{Type: protocol.TChannelMsg, Channel: r.Channel, Seq: m.Seq}}
			}
			if err := s.hand(ctx, ev); err != nil {
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
		s.lastSeq = max(s.lastSeq, *head) // what follows is live
	}
	return nil
}

// live passes on one unprompted frame; an error ends the subscription.
func (s *Subscription) live(ctx context.Context, f *protocol.Frame) error {
	ch := s.Channel()
	switch f.Type {
	case protocol.TChannelMsg:
		if f.Channel == ch {
			if f.Seq != 0 && f.Seq <= s.lastSeq {
				return nil // passed on already, from the history
			}
			s.lastSeq = max(s.lastSeq, f.Seq)
			return s.hand(ctx, Event{Kind: EventMessage, Frame: f})
		}
	case protocol.TRenamed:
		if f.Channel == ch && f.NewName != "" {
			return s.renamed(ctx, f)
		}
	case protocol.TUnsubscribed:
		if f.Channel == ch {
			if err := s.hand(ctx, Event{Kind: EventFrame, Frame: f}); err != nil {
				return err
			}
			return &UnsubscribedError{Channel: ch, Reason: f.Reason}
		}
	}
	return s.hand(ctx, Event{Kind: EventFrame, Frame: f})
}

// renamed follows a rename of the channel.
func (s *Subscription) renamed(ctx context.Context, notice *protocol.Frame) error {
	s.mu.Lock()
	s.channel = notice.NewName
	s.mu.Unlock()
	return s.hand(ctx, Event{Kind: EventRenamed, Frame: notice})
}

// hand gives ev to the reader, waiting for it.
func (s *Subscription) hand(ctx context.Context, ev Event) error {
	select {
	case s.events <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// watch starts moving conn's unprompted frames into a bounded queue, so
// that the connection's reader never waits for the subscription's (which
// would hold back the replies of its history reads).
func (s *Subscription) watch(conn *Conn) *pending {
	q := &pending{ready: make(chan struct{}, 1), stopped: make(chan struct{}), limit: s.opts.Buffer}
	go q.pump(conn)
	return q
}

// pending is a connection's unprompted frames waiting for the run
// goroutine, at most limit of them.
type pending struct {
	limit   int
	ready   chan struct{} // signalled when frames arrive or the connection ends
	stopped chan struct{} // closed when pump has returned

	// mu guards the fields below.
	mu     sync.Mutex
	frames []*protocol.Frame
	closed bool // the connection's Events channel is closed
	over   bool // more than limit frames waited: the connection was closed
}

func (q *pending) pump(conn *Conn) {
	defer close(q.stopped)
	for f := range conn.Events() {
		q.mu.Lock()
		if q.over {
			q.mu.Unlock()
			continue
		}
		if len(q.frames) >= q.limit {
			q.over = true
			q.frames = nil
			q.mu.Unlock()
			// Close stops the reader, which then gives up handing
			// events over (it never waits on this loop past Close).
			conn.Close()
			continue
		}
		q.frames = append(q.frames, f)
		q.mu.Unlock()
		q.signal()
	}
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

func (q *pending) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take returns the frames waiting and whether the connection has ended
// (then no more come).
func (q *pending) take() ([]*protocol.Frame, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	fs := q.frames
	q.frames = nil
	return fs, q.closed || q.over
}

func (q *pending) overflowed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.over
}

// wait waits for pump to return (after the connection was closed).
func (q *pending) wait() { <-q.stopped }

// takeRename removes and returns a waiting renamed notice of channel ch,
// or nil.
func (q *pending) takeRename(ch string) *protocol.Frame {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, f := range q.frames {
		if f.Type == protocol.TRenamed && f.Channel == ch && f.NewName != "" {
			q.frames = append(q.frames[:i:i], q.frames[i+1:]...)
			return f
		}
	}
	return nil
}
