package main

import (
	"context"

	"github.com/conclave/conclave/protocol"
)

// ChannelCmd groups the channel verbs.
type ChannelCmd struct {
	Create        ChannelCreateCmd        `cmd:"" help:"Create a channel; you become its admin and first member."`
	List          ChannelListCmd          `cmd:"" aliases:"ls" help:"List the channels you can see."`
	Delete        ChannelDeleteCmd        `cmd:"" aliases:"rm" help:"Delete a channel you administer, with its access list, bans, invites and history."`
	Rename        ChannelRenameCmd        `cmd:"" help:"Rename a channel you administer; subscribers follow it to the new name."`
	SetVisibility ChannelSetVisibilityCmd `cmd:"" name:"set-visibility" help:"Make a channel you administer public, unlisted or private."`
}

// ChannelCreateCmd creates a channel.
type ChannelCreateCmd struct {
	serverFlag
	Name       string `arg:"" help:"The channel's name."`
	Visibility string `name:"visibility" enum:"public,unlisted,private" default:"public" help:"Who can see and join it: public, unlisted or private (default public)."`
}

// Run creates the channel and prints `✓ created <name> (<visibility>)`.
func (c *ChannelCreateCmd) Run(ctx context.Context, g *Globals) error {
	if err := checkNewName("channel name", c.Name); err != nil {
		return err
	}
	f := &protocol.Frame{Type: protocol.TCreateChannel, Channel: c.Name, Visibility: c.Visibility}
	_, srv, err := g.oneShot(ctx, c.Server, f, protocol.TAck)
	if err != nil {
		return err
	}
	g.rememberChannels(srv.URL, channelChange{add: []string{c.Name}})
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
	r, srv, err := g.oneShot(ctx, c.Server, &protocol.Frame{Type: protocol.TListChannels}, protocol.TChannelList)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(r.Channels))
	for _, ch := range r.Channels {
		names = append(names, ch.Name)
	}
	g.rememberChannels(srv.URL, channelChange{replace: true, add: names})
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

// ChannelDeleteCmd deletes a channel.
type ChannelDeleteCmd struct {
	serverFlag
	Name string `arg:"" complete:"channel" help:"The channel to delete."`
}

// Run deletes the channel and prints `✓ deleted <name>`. Every session
// subscribed to it is told why it was removed.
func (c *ChannelDeleteCmd) Run(ctx context.Context, g *Globals) error {
	if err := checkName("channel name", c.Name); err != nil {
		return err
	}
	f := &protocol.Frame{Type: protocol.TDeleteChannel, Channel: c.Name}
	_, srv, err := g.oneShot(ctx, c.Server, f, protocol.TAck)
	if err != nil {
		return err
	}
	g.rememberChannels(srv.URL, channelChange{remove: c.Name})
	return g.done(struct {
		Channel string `json:"channel"`
	}{c.Name}, "deleted %s", c.Name)
}

// ChannelRenameCmd renames a channel.
type ChannelRenameCmd struct {
	serverFlag
	Name    string `arg:"" complete:"channel" help:"The channel's current name."`
	NewName string `arg:"" name:"new-name" help:"Its new name."`
}

// Run renames the channel and prints `✓ renamed <name> to <new name>`.
func (c *ChannelRenameCmd) Run(ctx context.Context, g *Globals) error {
	if err := checkName("channel name", c.Name); err != nil {
		return err
	}
	if err := checkNewName("channel name", c.NewName); err != nil {
		return err
	}
	f := &protocol.Frame{Type: protocol.TRenameChannel, Channel: c.Name, NewName: c.NewName}
	_, srv, err := g.oneShot(ctx, c.Server, f, protocol.TAck)
	if err != nil {
		return err
	}
	g.rememberChannels(srv.URL, channelChange{remove: c.Name, add: []string{c.NewName}})
	return g.done(struct {
		Channel string `json:"channel"`
		NewName string `json:"new_name"`
	}{c.Name, c.NewName}, "renamed %s to %s", c.Name, c.NewName)
}

// ChannelSetVisibilityCmd changes a channel's visibility.
type ChannelSetVisibilityCmd struct {
	serverFlag
	Name       string `arg:"" complete:"channel" help:"The channel."`
	Visibility string `arg:"" enum:"public,unlisted,private" help:"public, unlisted or private."`
}

// Run sets the visibility and prints `✓ <name> is now <visibility>`.
// Existing subscriptions are not touched.
func (c *ChannelSetVisibilityCmd) Run(ctx context.Context, g *Globals) error {
	if err := checkName("channel name", c.Name); err != nil {
		return err
	}
	f := &protocol.Frame{Type: protocol.TSetVisibility, Channel: c.Name, Visibility: c.Visibility}
	if _, _, err := g.oneShot(ctx, c.Server, f, protocol.TAck); err != nil {
		return err
	}
	return g.done(struct {
		Channel    string `json:"channel"`
		Visibility string `json:"visibility"`
	}{c.Name, c.Visibility}, "%s is now %s", c.Name, c.Visibility)
}
