package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

// Run joins, prints the banner `tailing #<channel> as <path> — Ctrl-C to
// stop` (on stderr with --json), then the history from --since (every
// page, oldest first, up to the join's head), then live messages, each
// channel message once, in sequence order.
//
// If the connection is lost — a transport failure, a keepalive timeout,
// or the server shutting down or restarting — it warns on stderr and
// reconnects with a jittered backoff of 1 s doubling to 30 s, joins again
// and catches up from the history after the last sequence number it
// printed, so that nothing is missed or printed twice (the
// control.Subscription does all of that). Ctrl-C ends it with status 0.
// Failing to connect the first time, a refused join, being dropped by the
// server for good (superseded, machine key revoked, user removed) and
// being unsubscribed from the channel (kick, ban, access-list removal,
// deletion) are errors: the reason on stderr, status 1. A rename is
// followed.
func (c *TailCmd) Run(ctx context.Context, g *Globals) error {
	t := &tailer{g: g, channel: c.Channel}
	var sinceMs *int64
	if c.Since != "" {
		since, err := timespec.ParseTime(c.Since, time.Now())
		if err != nil {
			return err
		}
		ms := since.UnixMilli()
		sinceMs = &ms
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
	rd := &redialer{g: g, server: c.Server, co: co}
	sub, err := control.Subscribe(ctx, &control.SubscribeOptions{Dial: rd.dial, Channel: c.Channel, SinceMs: sinceMs, Logger: g.Logger})
	if err != nil {
		var pe *protocol.Error
		if rd.last != nil && errors.As(err, &pe) {
			return fmt.Errorf("join rejected: %w", err)
		}
		return err
	}
	defer sub.Close()
	// The subscription's goroutine makes the later logins.
	url, path := rd.first.srv.URL, rd.first.conn.Path()
	g.rememberChannels(url, channelChange{add: []string{c.Channel}})
	// stderr, like every status line: stdout holds only messages, so
	// `tail … | head -1` is the first message.
	fmt.Fprintf(g.Stderr, "tailing #%s as %s — Ctrl-C to stop\n", c.Channel, path)
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		t.event(ev, url)
	}
}

// tailer prints what tail receives.
type tailer struct {
	g       *Globals
	channel string // the channel's current name (it follows renames)
}

// event prints one event of the subscription; url names the server in
// the connection notices.
func (t *tailer) event(ev control.Event, url string) {
	switch ev.Kind {
	case control.EventMessage:
		f := ev.Frame
		t.print(tailLine{Kind: "channel", Channel: f.Channel, From: f.From, Body: f.Body,
			Sealed: f.Sealed != nil, TsMs: stamp(f.TsMs), Seq: f.Seq, History: ev.History})
	case control.EventGap:
		t.g.Logger.Debug("the history does not hold a message", "channel", t.channel, "seq", ev.Frame.Seq)
	case control.EventRenamed:
		fmt.Fprintf(t.g.Stderr, "#%s was renamed to #%s; still tailing\n", t.channel, ev.Frame.NewName)
		t.channel = ev.Frame.NewName
	case control.EventLost:
		fmt.Fprintf(t.g.Stderr, "⚠ connection to %s lost: %s — reconnecting (Ctrl-C to stop)\n", url, oneLine(ev.Err.Error()))
	case control.EventResumed:
		fmt.Fprintf(t.g.Stderr, "✓ reconnected; resuming #%s\n", t.channel)
	case control.EventRewound:
		fmt.Fprintf(t.g.Stderr, "⚠ the server lost messages it had sent (it went down before storing them); #%s goes on from seq %d\n", t.channel, ev.Frame.Seq)
	case control.EventFrame:
		f := ev.Frame
		switch f.Type {
		case protocol.TWhisper:
			t.print(tailLine{Kind: "whisper", From: f.From, Target: f.Target, Body: f.Body,
				Sealed: f.Sealed != nil, TsMs: stamp(f.TsMs)})
		case protocol.TPermissionRequest, protocol.TPermissionResolved:
			// Shown to the sessions on the user's approver machines only.
			if l, ok := permissionEvent(f); ok {
				printPermission(t.g, l, time.Now(), "[approval] ")
			}
		}
		// Unsubscribed from the channel ends the subscription with the
		// reason; an error frame announces a drop whose reason comes
		// with EventLost or the end.
	}
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
