package main

import (
	"context"
	"fmt"

	"github.com/conclave/conclave/protocol"
)

// ChannelCmd groups the channel verbs.
type ChannelCmd struct {
	Create ChannelCreateCmd `cmd:"" help:"Create a channel; you become its admin and first member."`
	List   ChannelListCmd   `cmd:"" aliases:"ls" help:"List the channels you can see."`
}

// ChannelCreateCmd creates a channel.
type ChannelCreateCmd struct {
	serverFlag
	Name       string `arg:"" help:"The channel's name."`
	Visibility string `name:"visibility" enum:"public,unlisted,private" default:"public" help:"Who can see and join it: public, unlisted or private (default public)."`
}

// Run creates the channel and prints `✓ <name>`.
func (c *ChannelCreateCmd) Run(ctx context.Context, g *Globals) error {
	if err := protocol.CheckName(c.Name); err != nil {
		return fmt.Errorf("invalid channel name %q: %w", c.Name, err)
	}
	f := &protocol.Frame{Type: protocol.TCreateChannel, Channel: c.Name, Visibility: c.Visibility}
	if _, _, err := g.oneShot(ctx, c.Server, f, protocol.TAck); err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(struct {
			Channel    string `json:"channel"`
			Visibility string `json:"visibility"`
		}{c.Name, c.Visibility})
	}
	g.printf("✓ created %s (%s)\n", c.Name, c.Visibility)
	return nil
}

// ChannelListCmd lists visible channels.
type ChannelListCmd struct {
	serverFlag
}

// Run prints `<name>\t<visibility>[\t(member)]` per channel.
func (c *ChannelListCmd) Run(ctx context.Context, g *Globals) error {
	r, _, err := g.oneShot(ctx, c.Server, &protocol.Frame{Type: protocol.TListChannels}, protocol.TChannelList)
	if err != nil {
		return err
	}
	if g.JSON {
		out := r.Channels
		if out == nil {
			out = []protocol.ChannelInfo{}
		}
		return g.printJSON(out)
	}
	for _, ch := range r.Channels {
		member := ""
		if ch.Member {
			member = "\t(member)"
		}
		g.printf("%s\t%s%s\n", ch.Name, ch.Visibility, member)
	}
	return nil
}
