package main

import (
	"context"

	"github.com/conclave/conclave/protocol"
)

// ACLCmd groups the access-list verbs. They are for channel admins: the
// channel's creator and server admins.
type ACLCmd struct {
	Add    ACLAddCmd    `cmd:"" help:"Add a user to a channel's access list (and lift their ban)."`
	Remove ACLRemoveCmd `cmd:"" aliases:"rm" help:"Remove a user from a channel's access list; their sessions leave the channel."`
	List   ACLListCmd   `cmd:"" aliases:"ls" help:"List a channel's access list."`
}

// ACLAddCmd adds a user to a channel's access list.
type ACLAddCmd struct {
	serverFlag
	channelFlag
	User string `arg:"" help:"The user to add."`
}

// Run prints `✓ added <user> to <channel>`.
func (c *ACLAddCmd) Run(ctx context.Context, g *Globals) error {
	return aclChange(ctx, g, c.Server, protocol.TACLAdd, c.Channel, c.User, "added %s to %s")
}

// ACLRemoveCmd removes a user from a channel's access list.
type ACLRemoveCmd struct {
	serverFlag
	channelFlag
	User string `arg:"" help:"The user to remove."`
}

// Run prints `✓ removed <user> from <channel>`.
func (c *ACLRemoveCmd) Run(ctx context.Context, g *Globals) error {
	return aclChange(ctx, g, c.Server, protocol.TACLRemove, c.Channel, c.User, "removed %s from %s")
}

// aclChange sends a request about one user of one channel (acl_add,
// acl_remove, ban, unban) and prints the text made of format, the user and
// the channel; with --json, {"channel": …, "user": …}.
func aclChange(ctx context.Context, g *Globals, server, typ, channel, user, format string) error {
	if err := checkName("channel name", channel); err != nil {
		return err
	}
	if err := checkName("username", user); err != nil {
		return err
	}
	f := &protocol.Frame{Type: typ, Channel: channel, User: user}
	if _, _, err := g.oneShot(ctx, server, f, protocol.TAck); err != nil {
		return err
	}
	return g.done(struct {
		Channel string `json:"channel"`
		User    string `json:"user"`
	}{channel, user}, format, user, channel)
}

// ACLListCmd lists a channel's access list.
type ACLListCmd struct {
	serverFlag
	channelFlag
}

// Run prints one user name per line; with --json, one array.
func (c *ACLListCmd) Run(ctx context.Context, g *Globals) error {
	return listUsers(ctx, g, c.Server, &protocol.Frame{Type: protocol.TACLList, Channel: c.Channel})
}

// listUsers sends a request answered with user_list (acl_list, ban_list,
// list_users) and prints the names.
func listUsers(ctx context.Context, g *Globals, server string, f *protocol.Frame) error {
	if f.Channel != "" {
		if err := checkName("channel name", f.Channel); err != nil {
			return err
		}
	}
	r, _, err := g.oneShot(ctx, server, f, protocol.TUserList)
	if err != nil {
		return err
	}
	return g.printNames(r.Users)
}
