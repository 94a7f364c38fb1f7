package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/conclave/conclave/timespec"

	"github.com/conclave/conclave/control"
	"github.com/conclave/conclave/protocol"
)

// TailCmd streams a channel, and the whispers addressed to its own
// session, to stdout until Ctrl-C.
type TailCmd struct {
	serverFlag
	Channel string `name:"channel" required:"" placeholder:"CHANNEL" help:"The channel to stream."`
	As      string `name:"as" placeholder:"HANDLE" help:"This session's handle (default cli-<pid>); others whisper to user/machine/HANDLE."`
	Since   string `name:"since" placeholder:"TIME" help:"First print the channel's history from TIME: RFC 3339, a date, or a duration before now (36h, 1d12h, 2w)."`
}

// tailLine is one line of --json output.
type tailLine struct {
	Kind    string  `json:"kind"` // channel or whisper
	Channel string  `json:"channel,omitempty"`
	From    string  `json:"from"`
	Target  string  `json:"target,omitempty"`
	Body    *string `json:"body"` // null for a sealed payload
	Sealed  bool    `json:"sealed,omitempty"`
	TsMs    int64   `json:"ts_ms"`
	Seq     uint64  `json:"seq,omitempty"`
	History bool    `json:"history,omitempty"` // read from the history (--since, or catching up after a reconnect)
}

// fillWait bounds how long tail waits, after a (re)join, for the history
// to hold the messages that came before the first live delivery (a post
// reaches subscribers before it is durable and readable).
const fillWait = 2 * time.Second

// rereadAfter is when tail reads the history once more after a (re)join
// if no live message has come (see fill).
const rereadAfter = 500 * time.Millisecond

// resumeSlack is how far before its first join tail reads the history
// after a reconnect when it had printed nothing yet (server and client
// clocks may differ a little).
const resumeSlack = time.Second

// Run joins, prints the banner `tailing #<channel> as <path> — Ctrl-C to
// stop` (on stderr with --json), then the history from --since (every
// page, oldest first), then live messages, each channel message once, in
// sequence order.
//
// If the connection is lost — a transport failure, a keepalive timeout,
// or the server shutting down or restarting — it warns on stderr and
// reconnects with a backoff of 1 s doubling to 30 s, joins again and
// catches up from the history after the last sequence number it printed,
// so that nothing is missed or printed twice. Ctrl-C ends it with status
// 0. Failing to connect the first time, a refused join, being dropped by
// the server for good (superseded, machine key revoked, user removed) and
// being unsubscribed from the channel (kick, ban, access-list removal,
// deletion) are errors: the reason on stderr, status 1. A rename is
// followed.
func (c *TailCmd) Run(ctx context.Context, g *Globals) error {
	t := &tailer{g: g, channel: c.Channel}
	if c.Since != "" {
		since, err := timespec.ParseTime(c.Since, time.Now())
		if err != nil {
			return err
		}
		ms := since.UnixMilli()
		t.sinceMs = &ms
	}
	if err := checkName("channel name", c.Channel); err != nil {
		return err
	}
	if c.As != "" {
		if err := checkNewName("session handle", c.As); err != nil {
			return err
		}
	}
	co := connectOptions{handle: c.As, keepalive: keepaliveEvery}
	started := time.Now()
	s, err := g.connect(ctx, c.Server, co)
	if err != nil {
		return err
	}
	for first := true; ; first = false {
		err := t.follow(ctx, s, first)
		s.conn.Close()
		if ctx.Err() != nil {
			return nil
		}
		if first && t.sinceMs == nil {
			// The position to resume from if nothing gets printed
			// before a reconnect.
			ms := started.Add(-resumeSlack).UnixMilli()
			t.sinceMs = &ms
		}
		var lost *lostError
		if !errors.As(err, &lost) {
			return err
		}
		if first && !t.joined || !control.Reconnectable(lost.err) {
			return lost.err
		}
		if t.joined {
			fmt.Fprintf(g.Stderr, "⚠ connection to %s lost: %s — reconnecting (Ctrl-C to stop)\n", s.srv.URL, oneLine(lost.err.Error()))
		} else {
			g.Logger.Debug("connection lost before the channel was joined again", "err", lost.err)
		}
		if s, err = t.reconnect(ctx, s, co); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// lostError is a connection that ended (or stopped answering) under tail;
// err says why. Whether tail reconnects depends on err.
type lostError struct{ err error }

func (e *lostError) Error() string { return e.err.Error() }
func (e *lostError) Unwrap() error { return e.err }

// tailer prints what tail receives and keeps its place in the channel.
type tailer struct {
	g       *Globals
	channel string          // the channel's current name (it follows renames)
	lastSeq uint64          // the newest channel message printed
	sinceMs *int64          // where the history is read from while lastSeq is 0
	joined  bool            // the last connection got as far as joining
	backoff control.Backoff // reconnect delays
}

// follow runs one connection: join, catch up from the history (with
// --since, and after every reconnect), then stream until the connection
// ends, returned as a *lostError, or a fatal error.
func (t *tailer) follow(ctx context.Context, s *session, first bool) error {
	t.joined = false
	r, err := s.request(ctx, &protocol.Frame{Type: protocol.TJoin, Channel: t.channel})
	if err == nil {
		_, err = expect(r, protocol.TJoined)
	}
	if err != nil {
		if lost := t.lost(s, err); lost != nil {
			return lost
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !first && control.Reconnectable(err) { // e.g. internal: the server is shutting down
			return &lostError{err}
		}
		return fmt.Errorf("join rejected: %w", err)
	}
	t.joined = true
	t.backoff.Reset()
	if first {
		t.g.rememberChannels(s.srv.URL, channelChange{add: []string{t.channel}})
		// stderr, like every status line: stdout holds only messages, so
		// `tail … | head -1` is the first message.
		fmt.Fprintf(t.g.Stderr, "tailing #%s as %s — Ctrl-C to stop\n", t.channel, s.conn.Path())
	} else {
		fmt.Fprintf(t.g.Stderr, "✓ reconnected; resuming #%s\n", t.channel)
	}
	q := pump(s.conn)
	catchUp := !first || t.sinceMs != nil
	if catchUp {
		if _, err := t.history(ctx, s, q, 0); err != nil {
			return err
		}
	}
	// A post reaches subscribers before it is readable from the history,
	// so the history read above may have missed posts that were sent
	// before the join but were not yet durable: before the first live
	// message, read the history again up to it; and if none comes soon,
	// read it once more anyway.
	checkGap := catchUp
	var reread <-chan time.Time
	if catchUp {
		timer := time.NewTimer(rereadAfter)
		defer timer.Stop()
		reread = timer.C
	}
	for {
		frames, ended := q.take()
		for _, f := range frames {
			if checkGap && f.Type == protocol.TChannelMsg && f.Channel == t.channel {
				checkGap = false // deliveries leave the server in seq order
				if f.Seq > t.lastSeq {
					if err := t.fill(ctx, s, q, f.Seq); err != nil {
						return err
					}
				}
			}
			if err := t.event(f); err != nil {
				return err
			}
		}
		if ended {
			return &lostError{connErr(s)}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-q.ready:
		case <-reread:
			reread = nil
			if checkGap {
				if _, err := t.history(ctx, s, q, 0); err != nil {
					return err
				}
			}
		}
	}
}

// reconnect dials again, waiting the backoff's delays, until it gets a
// connection, ctx ends, or the server refuses for good.
func (t *tailer) reconnect(ctx context.Context, old *session, co connectOptions) (*session, error) {
	for {
		d := t.backoff.Next()
		t.g.Logger.Debug("reconnecting", "server", old.srv.URL, "in", d.String())
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
		s, err := t.g.redial(ctx, old, co)
		if err == nil {
			return s, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !control.Reconnectable(err) {
			return nil, err
		}
		t.g.Logger.Debug("reconnect failed", "server", old.srv.URL, "err", err)
	}
}

// lost returns a *lostError if err, from a request on s, means that the
// connection ended or stopped answering; nil for a refusal or a
// cancelled context.
func (t *tailer) lost(s *session, err error) error {
	var te *control.TimeoutError
	switch {
	case errors.Is(err, context.Canceled):
		return nil
	case errors.Is(err, control.ErrNoResponse):
		return &lostError{connErr(s)}
	case errors.As(err, &te):
		return &lostError{err} // the caller closes the connection
	}
	select {
	case <-s.conn.Done():
		return &lostError{connErr(s)}
	default:
		return nil
	}
}

// connErr is why the connection of s ended.
func connErr(s *session) error {
	if err := s.conn.Err(); err != nil {
		return err
	}
	return control.ErrNoResponse
}

// history prints the channel's history after the last message printed
// (or from sinceMs), page by page, until the server says there is no
// more; with until > 0 it stops before the message with seq until and
// reports whether the history has reached it.
func (t *tailer) history(ctx context.Context, s *session, q *eventQueue, until uint64) (reached bool, err error) {
	req := &protocol.Frame{Type: protocol.TReadSince, Channel: t.channel}
	if t.lastSeq > 0 {
		after := t.lastSeq
		req.AfterSeq = &after
	} else if t.sinceMs != nil {
		ms := *t.sinceMs
		req.SinceMs = &ms
	}
	renamed := false
	for {
		req.Channel = t.channel
		r, err := s.request(ctx, req)
		if err == nil {
			r, err = expect(r, protocol.THistory)
		}
		if err != nil {
			if lost := t.lost(s, err); lost != nil || ctx.Err() != nil {
				return false, cmp.Or(lost, ctx.Err())
			}
			// The channel may have been renamed under us: its notice is
			// then waiting in q.
			var pe *protocol.Error
			if !renamed && errors.As(err, &pe) && pe.Code == protocol.CodeNotFound && q.followRename(t) {
				renamed = true
				continue
			}
			return false, fmt.Errorf("read the history of #%s: %w", t.channel, err)
		}
		for _, m := range r.Messages {
			if until > 0 && m.Seq >= until {
				return true, nil
			}
			if m.Seq <= t.lastSeq {
				continue
			}
			t.print(tailLine{Kind: "channel", Channel: t.channel, From: m.From, Body: m.Body,
				Sealed: m.Sealed != nil, TsMs: m.TsMs, Seq: m.Seq, History: true})
			t.lastSeq = m.Seq
		}
		if !r.More {
			return false, nil
		}
		if req.AfterSeq != nil && r.NextSeq <= *req.AfterSeq {
			return false, nil // no progress: do not loop
		}
		next := r.NextSeq
		req.AfterSeq, req.SinceMs = &next, nil
	}
}

// fill prints the history up to seq, the first live message after a join,
// once the history holds seq (so that every post before it is readable
// too); after fillWait it gives up (a post the server could not store
// never appears in the history).
func (t *tailer) fill(ctx context.Context, s *session, q *eventQueue, seq uint64) error {
	deadline := time.Now().Add(fillWait)
	for {
		reached, err := t.history(ctx, s, q, seq)
		if err != nil || reached {
			return err
		}
		if time.Now().After(deadline) {
			t.g.Logger.Debug("the history does not hold a delivered message; going on", "seq", seq)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// eventQueue holds a connection's unprompted frames without bound, so that
// the connection's reader never waits for tail (which would hold back the
// replies tail is waiting for while it reads the history).
type eventQueue struct {
	mu     sync.Mutex
	frames []*protocol.Frame
	closed bool          // the connection's Events channel is closed
	ready  chan struct{} // signalled when frames arrive or closed is set
}

// pump starts moving c's events into a new queue.
func pump(c *control.Conn) *eventQueue {
	q := &eventQueue{ready: make(chan struct{}, 1)}
	go func() {
		for f := range c.Events() {
			q.mu.Lock()
			q.frames = append(q.frames, f)
			q.mu.Unlock()
			q.signal()
		}
		q.mu.Lock()
		q.closed = true
		q.mu.Unlock()
		q.signal()
	}()
	return q
}

func (q *eventQueue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take returns the frames queued so far and whether the connection has
// ended (then no more will come).
func (q *eventQueue) take() ([]*protocol.Frame, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	fs := q.frames
	q.frames = nil
	return fs, q.closed
}

// followRename applies a waiting renamed notice for t's channel, if there
// is one, and reports whether it did.
func (q *eventQueue) followRename(t *tailer) bool {
	q.mu.Lock()
	var notice *protocol.Frame
	for _, f := range q.frames {
		if f.Type == protocol.TRenamed && f.Channel == t.channel && f.NewName != "" {
			notice = f
			break
		}
	}
	q.mu.Unlock()
	if notice == nil {
		return false
	}
	return t.event(notice) == nil
}

// event handles one unprompted frame.
func (t *tailer) event(f *protocol.Frame) error {
	switch f.Type {
	case protocol.TChannelMsg:
		if f.Channel != t.channel {
			return nil
		}
		if f.Seq != 0 && f.Seq <= t.lastSeq {
			return nil // already printed from the backlog
		}
		t.lastSeq = max(t.lastSeq, f.Seq)
		t.print(tailLine{Kind: "channel", Channel: f.Channel, From: f.From, Body: f.Body,
			Sealed: f.Sealed != nil, TsMs: stamp(f.TsMs), Seq: f.Seq})
	case protocol.TWhisper:
		t.print(tailLine{Kind: "whisper", From: f.From, Target: f.Target, Body: f.Body,
			Sealed: f.Sealed != nil, TsMs: stamp(f.TsMs)})
	case protocol.TUnsubscribed:
		if f.Channel == t.channel {
			return fmt.Errorf("unsubscribed from #%s: %s", t.channel, orUnknown(f.Reason))
		}
	case protocol.TRenamed:
		if f.Channel == t.channel && f.NewName != "" {
			fmt.Fprintf(t.g.Stderr, "#%s was renamed to #%s; still tailing\n", t.channel, f.NewName)
			t.channel = f.NewName
		}
	case protocol.TPermissionRequest, protocol.TPermissionResolved:
		// Shown to the sessions on the user's approver machines only.
		if l, ok := permissionEvent(f); ok {
			printPermission(t.g, l, time.Now(), "[approval] ")
		}
	case protocol.TError:
		// The server is dropping this session; the reason becomes the
		// connection's error once it closes.
	}
	return nil
}

func (t *tailer) print(l tailLine) {
	if t.g.JSON {
		if err := t.g.printJSON(l); err != nil {
			t.g.Logger.Debug("write failed", "err", err)
		}
		return
	}
	text := "<end-to-end-encrypted payload>"
	if l.Body != nil && !l.Sealed {
		text = sanitize(*l.Body)
	}
	scope := l.Channel
	if l.Kind == "whisper" {
		scope = "whisper"
	}
	t.g.printf("[%s] %s: %s\n", scope, sanitize(l.From), text)
}

// sanitize keeps a message from driving the terminal: control characters
// other than newline and tab become U+FFFD.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r != '\n' && r != '\t' && unicode.IsControl(r) {
			return '\uFFFD'
		}
		return r
	}, s)
}

// stamp returns ts, or now if the server sent none.
func stamp(ts int64) int64 {
	if ts == 0 {
		return time.Now().UnixMilli()
	}
	return ts
}

func orUnknown(s string) string {
	if s == "" {
		return "no reason given"
	}
	return s
}
