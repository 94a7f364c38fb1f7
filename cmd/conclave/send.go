package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/conclave/conclave/protocol"
)

// SendCmd posts one message: it joins the channel (which needs no token
// for public and unlisted channels, or for a member), posts, and waits for
// the server's acknowledgement. With --lines it posts each line as a
// message of its own, without waiting for each ack before the next.
type SendCmd struct {
	serverFlag
	Channel string `name:"channel" required:"" placeholder:"CHANNEL" help:"The channel to post to."`
	Lines   bool   `name:"lines" help:"Post each non-empty line as its own message, in order (with -, as stdin brings them)."`
	Window  int    `name:"window" default:"32" hidden:"" help:"With --lines, how many posts may wait for their ack at once."`
	Text    string `arg:"" help:"The message; - reads it from stdin (to its end)."`
}

// Run posts and prints `✓ sent to <channel>`.
func (c *SendCmd) Run(ctx context.Context, g *Globals) error {
	if err := protocol.CheckName(c.Channel); err != nil {
		return fmt.Errorf("invalid channel name %q: %w", c.Channel, err)
	}
	if c.Lines {
		return c.sendLines(ctx, g)
	}
	body, err := g.messageText(c.Text)
	if err != nil {
		return err
	}
	s, err := c.join(ctx, g, connectOptions{})
	if err != nil {
		return err
	}
	defer s.conn.Close()
	r, err := s.request(ctx, &protocol.Frame{Type: protocol.TChannelMsg, Channel: c.Channel, Body: &body})
	if err == nil {
		r, err = expect(r, protocol.TAck)
	}
	if err != nil {
		return fmt.Errorf("send rejected: %w", err)
	}
	if g.JSON {
		return g.printJSON(struct {
			Channel string `json:"channel"`
			Seq     uint64 `json:"seq"`
		}{c.Channel, r.Seq})
	}
	g.printf("✓ sent to %s\n", c.Channel)
	return nil
}

// join connects and joins the channel.
func (c *SendCmd) join(ctx context.Context, g *Globals, co connectOptions) (*session, error) {
	s, err := g.connect(ctx, c.Server, co)
	if err != nil {
		return nil, err
	}
	r, err := s.request(ctx, &protocol.Frame{Type: protocol.TJoin, Channel: c.Channel})
	if err == nil {
		_, err = expect(r, protocol.TJoined)
	}
	if err != nil {
		s.conn.Close()
		return nil, fmt.Errorf("join rejected: %w", err)
	}
	return s, nil
}

// stdinLimit bounds what "-" reads: more than any server's largest body,
// so an oversized message is refused by the server with its limit.
const stdinLimit = 16 << 20

// messageText returns the message to send: arg itself, or stdin read to
// its end when arg is exactly "-" (stdin is never read otherwise: an
// agent's shell may hand a verb a stdin that never closes). One trailing
// newline is dropped (echo adds it). An empty or whitespace-only message
// is refused.
func (g *Globals) messageText(arg string) (string, error) {
	text := arg
	if arg == "-" {
		if g.Stdin == nil {
			return "", errors.New("no stdin to read the message from")
		}
		b, err := io.ReadAll(io.LimitReader(g.Stdin, stdinLimit+1))
		if err != nil {
			return "", fmt.Errorf("read the message from stdin: %w", err)
		}
		if len(b) > stdinLimit {
			return "", fmt.Errorf("the message on stdin is larger than %d MiB", stdinLimit>>20)
		}
		text = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	}
	if strings.TrimSpace(text) == "" {
		if arg == "-" {
			return "", errors.New("empty message on stdin: nothing to send")
		}
		return "", errors.New("empty message: nothing to send (give the text, or - to read it from stdin)")
	}
	return text, nil
}
