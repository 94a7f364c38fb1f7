package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/conclave/conclave/control"
	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

// RegisterCmd claims a username on a server and enrolls this machine's key
// under it, creating the key if needed, then records the registration
// (with the server's id, which later connections are pinned to).
type RegisterCmd struct {
	Username string `arg:"" optional:"" help:"The username to claim (with --existing: optional, checked against the server's answer)."`
	Existing bool   `name:"existing" help:"This machine's key is already enrolled (machine add on another machine, or user add by a server admin): log in and record the registration instead of claiming a name."`
	Server   string `name:"server" env:"CONCLAVE_SERVER" placeholder:"URL" help:"The server's URL (ws://host:port or wss://host); may be left out when exactly one server is registered."`
	Machine  string `name:"machine" placeholder:"NAME" help:"This machine's name (default: the host name)."`
}

// Run registers and prints `✓ registered user/machine/cli-<pid>`.
func (c *RegisterCmd) Run(ctx context.Context, g *Globals) error {
	dir, cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	url := c.Server
	if url == "" {
		if len(cfg.Servers) != 1 {
			return errors.New("which server? pass --server URL")
		}
		url = cfg.Servers[0].URL
	}
	if url, err = identity.NormalizeURL(url); err != nil {
		return err
	}
	machine := c.Machine
	if machine == "" {
		machine = identity.DefaultMachineName()
	}
	if c.Username == "" && !c.Existing {
		return errors.New("which username? conclave register USERNAME --server URL (or --existing for a key already enrolled)")
	}
	for _, n := range []struct{ what, v string }{{"username", c.Username}, {"machine name", machine}} {
		if n.v == "" && c.Existing {
			continue
		}
		check := checkNewName // a name this registration creates
		if c.Existing {
			check = checkName // names the server already holds
		}
		if err := check(n.what, n.v); err != nil {
			return err
		}
	}
	key, _, notice, err := identity.LoadOrCreateKey(dir, "")
	if err != nil {
		return err
	}
	g.notice(notice)
	// Re-registering with a server already pinned keeps the pin: a
	// reinstalled server must be forgotten first (conclave server remove).
	pin := ""
	if s, ok := cfg.FindServer(url); ok {
		pin = s.ServerID
	}
	var reg *control.Registration
	if !c.Existing {
		reg = &control.Registration{Username: c.Username, Machine: machine}
	}
	opts := &control.Options{
		URL:            url,
		Key:            key,
		Session:        oneShotHandle(),
		PinnedServerID: pin,
		Register:       reg,
		ClientName:     g.clientName(),
		Logger:         g.Logger,
	}
	conn, err := control.Dial(ctx, opts)
	existing := c.Existing
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Code == protocol.CodeConflict && reg != nil {
		// The name is taken: perhaps by this very key (a registration
		// forgotten with `server remove`, or made from another config
		// dir). Then logging in is the registration.
		conn, existing, err = g.loginAsExisting(ctx, opts, c.Username, err)
	} else if pe != nil {
		return fmt.Errorf("registration rejected: %w", err)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	username := c.Username
	if existing {
		p, err := protocol.ParseSessionPath(conn.Path())
		if err != nil {
			return fmt.Errorf("the server answered with a bad session path: %w", err)
		}
		if username != "" && username != p.User {
			return fmt.Errorf("this key is enrolled as %s on %s, not %s", p.User, url, username)
		}
		username, machine = p.User, p.Machine
	}
	cfg.UpsertServer(identity.Server{URL: url, Username: username, Machine: machine, ServerID: conn.ServerID()})
	if err := cfg.Save(dir); err != nil {
		return fmt.Errorf("registered as %s, but could not record it: %w", conn.Path(), err)
	}
	if g.JSON {
		return g.printJSON(struct {
			Path     string `json:"path"`
			Server   string `json:"server"`
			ServerID string `json:"server_id"`
			Admin    bool   `json:"admin"`
		}{conn.Path(), url, conn.ServerID(), conn.Admin()})
	}
	g.printf("✓ registered %s\n", conn.Path())
	return nil
}

// loginAsExisting logs in with opts' key and no registration after a
// register of username was refused with taken: if the key is enrolled
// under username it returns that session, to be recorded as register
// --existing would. Otherwise it returns the refusal, naming the
// command that fits.
func (g *Globals) loginAsExisting(ctx context.Context, opts *control.Options, username string, refused error) (*control.Conn, bool, error) {
	login := *opts
	login.Register = nil
	conn, err := control.Dial(ctx, &login)
	if err != nil {
		return nil, false, fmt.Errorf("registration rejected: %w", refused)
	}
	p, perr := protocol.ParseSessionPath(conn.Path())
	if perr != nil || p.User != username {
		conn.Close()
		who := "another user"
		if perr == nil {
			who = p.User
		}
		return nil, false, fmt.Errorf("registration rejected: %w (this machine's key is enrolled as %s there: conclave register --existing --server %s)", refused, who, opts.URL)
	}
	fmt.Fprintf(g.Stderr, "this machine's key is already enrolled as %s/%s on %s: recording that registration\n", p.User, p.Machine, opts.URL)
	return conn, true, nil
}
