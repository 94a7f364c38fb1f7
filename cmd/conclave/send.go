package main

import (
	"context"
	"fmt"

	"github.com/conclave/conclave/protocol"
)

// SendCmd posts one message: it joins the channel (which needs no token
// for public and unlisted channels, or for a member), posts, and waits for
// the server's acknowledgement.
type SendCmd struct {
	serverFlag
	Channel string `name:"channel" required:"" placeholder:"CHANNEL" help:"The channel to post to."`
	Text    string `arg:"" help:"The message."`
}

// Run posts and prints `✓ sent to <channel>`.
func (c *SendCmd) Run(ctx context.Context, g *Globals) error {
	if err := protocol.CheckName(c.Channel); err != nil {
		return fmt.Errorf("invalid channel name %q: %w", c.Channel, err)
	}
	s, err := g.connect(ctx, c.Server, connectOptions{})
	if err != nil {
		return err
	}
	defer s.conn.Close()
	r, err := s.request(ctx, &protocol.Frame{Type: protocol.TJoin, Channel: c.Channel})
	if err == nil {
		_, err = expect(r, protocol.TJoined)
	}
	if err != nil {
		return fmt.Errorf("join rejected: %w", err)
	}
	body := c.Text
	r, err = s.request(ctx, &protocol.Frame{Type: protocol.TChannelMsg, Channel: c.Channel, Body: &body})
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
