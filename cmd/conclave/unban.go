package main

import (
	"context"

	"github.com/conclave/conclave/protocol"
)

// UnbanCmd lifts a ban. It does not restore access-list membership.
type UnbanCmd struct {
	serverFlag
	channelFlag
	User string `arg:"" help:"The user to unban."`
}

// Run prints `✓ unbanned <user> from <channel>`.
func (c *UnbanCmd) Run(ctx context.Context, g *Globals) error {
	return aclChange(ctx, g, c.Server, protocol.TUnban, c.Channel, c.User, "unbanned %s from %s")
}
