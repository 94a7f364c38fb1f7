package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// DefaultSubscriptionBuffer is how many unprompted frames a
// [Subscription] holds for its reader by default.
const DefaultSubscriptionBuffer = DefaultSessionBuffer

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

// Subscription follows one channel across connections: a [Session] with
// that one channel that, after every join, reads the history up to the
// join's head (until_seq) before it passes on the live deliveries, so that
// each message comes exactly once and in order. When the connection ends
// for a reason worth retrying ([Reconnectable]) it reconnects (with
// [SubscribeOptions.Backoff]), joins again and catches up after the last
// message it passed on. It follows renames of the channel.
//
// Its methods are safe for concurrent use. Always call
// [Subscription.Close].
type Subscription struct {
	sess   *Session
	done   chan struct{} // closed when the session's Run has returned
	cancel context.CancelFunc

	// mu guards the fields below.
	mu      sync.Mutex
	channel string // the channel's current name
	err     error  // why the subscription ended on its own (unsubscribed, a refused rejoin)
	closed  bool
}

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
	sess, err := NewSession(&SessionOptions{Dial: o.Dial, Buffer: o.Buffer, Backoff: o.Backoff, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	sess.catchUp = true
	sess.channels = []*sessionChannel{{name: o.Channel, sticky: true, token: o.Token, since: o.SinceMs}}
	if o.AfterSeq > 0 {
		sess.marks[o.Channel] = &Watermark{Seq: o.AfterSeq, Synced: true}
	}
	life, cancel := context.WithCancel(context.Background())
	s := &Subscription{sess: sess, done: make(chan struct{}), cancel: cancel, channel: o.Channel}
	go func() {
		defer close(s.done)
		_ = sess.Run(life) // its end comes out of Next
	}()
	for {
		ev, err := sess.Next(ctx)
		if err == nil {
			switch ev.Kind {
			case EventJoined:
				return s, nil
			case EventDialFailed, EventLost, EventJoinRefused:
				err = ev.Err
			default:
				continue
			}
		}
		s.Close()
		return nil, err
	}
}

// Conn returns the current connection, or nil while the subscription
// reconnects. Requests may be sent on it; it must not be closed.
func (s *Subscription) Conn() *Conn { return s.sess.Conn() }

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
	for {
		s.mu.Lock()
		ch, end := s.channel, s.err
		if s.closed {
			end = ErrClosed
		}
		s.mu.Unlock()
		if end != nil {
			return Event{}, end
		}
		ev, err := s.sess.Next(ctx)
		if err != nil {
			return Event{}, err
		}
		switch ev.Kind {
		case EventUp, EventDialFailed:
			continue // a Subscription reports a connection once it has joined
		case EventJoined:
			return Event{Kind: EventResumed}, nil
		case EventJoinRefused:
			return Event{}, s.fail(fmt.Errorf("join #%s again: %w", ev.Channel, ev.Err))
		case EventUnsubscribed:
			if ev.Frame.Channel == ch {
				s.fail(&UnsubscribedError{Channel: ch, Reason: ev.Frame.Reason})
			}
			ev.Kind = EventFrame
		case EventRenamed:
			if ev.Frame.Channel != ch {
				ev.Kind = EventFrame
				break
			}
			s.mu.Lock()
			s.channel = ev.Frame.NewName
			s.mu.Unlock()
		case EventMessage:
			if ev.Frame.Channel != ch && !ev.History {
				ev.Kind = EventFrame
			}
		}
		return ev, nil
	}
}

// fail ends the subscription with err, which Next returns from now on.
func (s *Subscription) fail(err error) error {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
	s.cancel()
	return err
}

// Close ends the subscription and its connection and waits for its
// goroutines. It is idempotent.
func (s *Subscription) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
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
