package main

import (
	"context"

	"github.com/conclave/conclave/protocol"
)

// UserCmd groups the user verbs, for server admins.
type UserCmd struct {
	List   UserListCmd   `cmd:"" aliases:"ls" help:"List every registered user (server admins)."`
	Remove UserRemoveCmd `cmd:"" aliases:"rm" help:"Remove a user with their machines, memberships and channels; their sessions are dropped (server admins)."`
}

// UserListCmd lists every user.
type UserListCmd struct {
	serverFlag
}

// Run prints one user name per line; with --json, one array.
func (c *UserListCmd) Run(ctx context.Context, g *Globals) error {
	return listUsers(ctx, g, c.Server, &protocol.Frame{Type: protocol.TListUsers})
}

// UserRemoveCmd removes a user from the server.
type UserRemoveCmd struct {
	serverFlag
	Username string `arg:"" help:"The user to remove."`
}

// Run prints `✓ removed user <name>`. The name becomes free to register
// again, without any of the old rights.
func (c *UserRemoveCmd) Run(ctx context.Context, g *Globals) error {
	if err := checkName("username", c.Username); err != nil {
		return err
	}
	f := &protocol.Frame{Type: protocol.TUserRemove, User: c.Username}
	if _, _, err := g.oneShot(ctx, c.Server, f, protocol.TAck); err != nil {
		return err
	}
	return g.done(struct {
		User string `json:"user"`
	}{c.Username}, "removed user %s", c.Username)
}
