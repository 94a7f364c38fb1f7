package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/conclave/conclave/protocol"
)

// WhoCmd lists live sessions: every session on the server, or those
// subscribed to one channel.
type WhoCmd struct {
	serverFlag
	Channel string `arg:"" optional:"" complete:"channel" help:"Only the sessions in this channel."`
}

// Run prints `[<channel or server>] <path>, <path>, …`.
func (c *WhoCmd) Run(ctx context.Context, g *Globals) error {
	if c.Channel != "" {
		if err := protocol.CheckName(c.Channel); err != nil {
			return fmt.Errorf("invalid channel name %q: %w", c.Channel, err)
		}
	}
	r, _, err := g.oneShot(ctx, c.Server, &protocol.Frame{Type: protocol.TWho, Channel: c.Channel}, protocol.TPresence)
	if err != nil {
		return err
	}
	sessions := r.Sessions
	if sessions == nil {
		sessions = []string{}
	}
	if g.JSON {
		var ch *string
		if c.Channel != "" {
			ch = &c.Channel
		}
		return g.printJSON(struct {
			Channel  *string  `json:"channel"`
			Sessions []string `json:"sessions"`
		}{ch, sessions})
	}
	scope := "server"
	if c.Channel != "" {
		scope = c.Channel
	}
	g.printf("%s\n", strings.TrimSpace(fmt.Sprintf("[%s] %s", scope, strings.Join(sessions, ", "))))
	return nil
}
