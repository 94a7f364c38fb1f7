package main

import (
	"context"

	"github.com/conclave/conclave/protocol"
)

// BansCmd lists the users banned from a channel.
type BansCmd struct {
	serverFlag
	channelFlag
}

// Run prints one user name per line; with --json, one array.
func (c *BansCmd) Run(ctx context.Context, g *Globals) error {
	return listUsers(ctx, g, c.Server, &protocol.Frame{Type: protocol.TBanList, Channel: c.Channel})
}
