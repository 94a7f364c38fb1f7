package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/conclave/conclave/protocol"
)

// KickCmd unsubscribes a session, or every session of a user, from a
// channel. The access list is not touched: the target may join again.
type KickCmd struct {
	serverFlag
	channelFlag
	Target string `arg:"" help:"A session path user/machine/session, or a user name (all of that user's sessions)."`
}

// Run prints `✓ kicked <target> from <channel>`.
func (c *KickCmd) Run(ctx context.Context, g *Globals) error {
	if err := checkName("channel name", c.Channel); err != nil {
		return err
	}
	if strings.Contains(c.Target, "/") {
		if _, err := protocol.ParseSessionPath(c.Target); err != nil {
			return fmt.Errorf("invalid kick target %q: want user/machine/session or a user name: %w", c.Target, err)
		}
	} else if err := checkName("kick target", c.Target); err != nil {
		return err
	}
	f := &protocol.Frame{Type: protocol.TKick, Channel: c.Channel, Target: c.Target}
	if _, _, err := g.oneShot(ctx, c.Server, f, protocol.TAck); err != nil {
		return err
	}
	return g.done(struct {
		Channel string `json:"channel"`
		Target  string `json:"target"`
	}{c.Channel, c.Target}, "kicked %s from %s", c.Target, c.Channel)
}
