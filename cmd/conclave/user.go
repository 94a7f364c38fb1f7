package main

import (
	"context"

	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

// UserCmd groups the user verbs, for server admins.
type UserCmd struct {
	Add    UserAddCmd    `cmd:"" help:"Create a user with its first machine's key, e.g. on a server with --registration closed (server admins)."`
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

// UserAddCmd creates a user with its first machine (server admins). The
// new user records the registration with `conclave register --existing`.
type UserAddCmd struct {
	serverFlag
	Username string `arg:"" help:"The new user's name."`
	Machine  string `name:"machine" required:"" placeholder:"NAME" help:"The name of their first machine."`
	Pubkey   string `name:"pubkey" required:"" placeholder:"KEY" help:"That machine's public key: the line conclave key prints there, or its base64 field."`
}

// Run prints `✓ added user <name>` and how the user finishes.
func (c *UserAddCmd) Run(ctx context.Context, g *Globals) error {
	if err := checkNewName("username", c.Username); err != nil {
		return err
	}
	if err := checkNewName("machine name", c.Machine); err != nil {
		return err
	}
	pub, err := identity.ParsePublicKey(c.Pubkey)
	if err != nil {
		return err
	}
	f := &protocol.Frame{Type: protocol.TUserAdd, User: c.Username, Machine: c.Machine, Pubkey: pub}
	_, srv, err := g.oneShot(ctx, c.Server, f, protocol.TAck)
	if err != nil {
		return err
	}
	return g.done(struct {
		User        string `json:"user"`
		Machine     string `json:"machine"`
		Fingerprint string `json:"fingerprint"`
	}{c.Username, c.Machine, identity.Fingerprint(pub)},
		"added user %s (machine %s, %s); on that machine: conclave register --existing --server %s", c.Username, c.Machine, identity.Fingerprint(pub), srv.URL)
}
