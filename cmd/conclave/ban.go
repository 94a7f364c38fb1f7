package main

import (
	"context"

	"github.com/conclave/conclave/protocol"
)

// BanCmd bans a user from a channel: they leave its access list, their
// sessions are unsubscribed, and they cannot join again (even a public
// channel) until unbanned or added back with 'acl add'.
type BanCmd struct {
	serverFlag
	channelFlag
	User string `arg:"" help:"The user to ban."`
}

// Run prints `✓ banned <user> from <channel>`.
func (c *BanCmd) Run(ctx context.Context, g *Globals) error {
	return aclChange(ctx, g, c.Server, protocol.TBan, c.Channel, c.User, "banned %s from %s")
}
