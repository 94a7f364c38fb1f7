package main

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/conclave/conclave/protocol"
)

// TailCmd streams a channel, and the whispers addressed to its own
// session, to stdout until Ctrl-C.
type TailCmd struct {
	serverFlag
	Channel string `name:"channel" required:"" placeholder:"CHANNEL" help:"The channel to stream."`
	As      string `name:"as" placeholder:"HANDLE" help:"This session's handle (default cli-<pid>); others whisper to user/machine/HANDLE."`
	Since   string `name:"since" placeholder:"TIME" help:"First print the channel's history from TIME: RFC 3339, a date, or a duration before now (36h, 7d)."`
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
	History bool    `json:"history,omitempty"` // from --since's backlog
}

// Run joins, prints the banner `tailing #<channel> as <path> — Ctrl-C to
// stop` (on stderr with --json), then the backlog if --since is given, then
// live messages. Ctrl-C ends it with status 0; losing the connection, being
// dropped by the server, or being unsubscribed from the channel is an
// error.
func (c *TailCmd) Run(ctx context.Context, g *Globals) error {
	var since time.Time
	if c.Since != "" {
		t, err := parseSince(c.Since, time.Now())
		if err != nil {
			return err
		}
		since = t
	}
	if err := protocol.CheckName(c.Channel); err != nil {
		return fmt.Errorf("invalid channel name %q: %w", c.Channel, err)
	}
	if c.As != "" {
		if err := protocol.CheckName(c.As); err != nil {
			return fmt.Errorf("invalid session handle %q: %w", c.As, err)
		}
	}
	s, err := g.connect(ctx, c.Server, connectOptions{handle: c.As, keepalive: keepaliveEvery})
	if err != nil {
		return err
	}
	defer s.conn.Close()
	t := &tailer{g: g, channel: c.Channel}
	r, err := s.request(ctx, &protocol.Frame{Type: protocol.TJoin, Channel: c.Channel})
	if err == nil {
		_, err = expect(r, protocol.TJoined)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("join rejected: %w", err)
	}
	banner := fmt.Sprintf("tailing #%s as %s — Ctrl-C to stop\n", c.Channel, s.conn.Path())
	if g.JSON {
		fmt.Fprint(g.Stderr, banner)
	} else {
		g.printf("%s", banner)
	}
	if c.Since != "" {
		if err := t.backlog(ctx, s, since); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case f, ok := <-s.conn.Events():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return s.conn.Err()
			}
			if err := t.event(f); err != nil {
				return err
			}
		}
	}
}

// tailer prints what tail receives.
type tailer struct {
	g       *Globals
	channel string // the channel's current name (it follows renames)
	lastSeq uint64 // the newest channel message printed
}

// backlog prints the channel's history from since, page by page.
func (t *tailer) backlog(ctx context.Context, s *session, since time.Time) error {
	ms := since.UnixMilli()
	req := &protocol.Frame{Type: protocol.TReadSince, Channel: t.channel, SinceMs: &ms}
	for {
		r, err := s.request(ctx, req)
		if err == nil {
			r, err = expect(r, protocol.THistory)
		}
		if err != nil {
			return fmt.Errorf("read history: %w", err)
		}
		before := t.lastSeq
		for _, m := range r.Messages {
			t.print(tailLine{Kind: "channel", Channel: t.channel, From: m.From, Body: m.Body,
				Sealed: m.Sealed != nil, TsMs: m.TsMs, Seq: m.Seq, History: true})
			t.lastSeq = max(t.lastSeq, m.Seq)
		}
		if !r.More || len(r.Messages) == 0 || t.lastSeq == before {
			return nil
		}
		after := t.lastSeq
		req = &protocol.Frame{Type: protocol.TReadSince, Channel: t.channel, AfterSeq: &after}
	}
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
