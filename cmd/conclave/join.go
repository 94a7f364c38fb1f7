package main

import (
	"context"
	"fmt"

	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

// JoinCmd checks that this user may join a channel, redeeming an invite
// token if one is given (which adds the user to a private channel's
// members). The subscription ends with the command; a live agent session
// subscribes through the bridge's join_channel tool.
type JoinCmd struct {
	serverFlag
	Channel string `arg:"" complete:"channel" help:"The channel to join."`
	Token   string `name:"token" placeholder:"TOKEN" help:"An invite token for a private channel."`
	Perm    string `name:"perm" placeholder:"LEVEL" help:"After a successful join, set this channel's local permission level: mute, notify, converse or act."`
}

// Run joins and prints `✓ joined <channel>`; with --perm it then records
// the level in config.toml.
func (c *JoinCmd) Run(ctx context.Context, g *Globals) error {
	var level *identity.Level
	if c.Perm != "" {
		l, err := identity.ParseLevel(c.Perm)
		if err != nil {
			return err
		}
		level = &l
	}
	if err := protocol.CheckName(c.Channel); err != nil {
		return fmt.Errorf("invalid channel name %q: %w", c.Channel, err)
	}
	s, err := g.connect(ctx, c.Server, connectOptions{})
	if err != nil {
		return err
	}
	defer s.conn.Close()
	srv := &s.srv
	r, err := s.request(ctx, &protocol.Frame{Type: protocol.TJoin, Channel: c.Channel, Token: c.Token})
	if err == nil {
		_, err = expect(r, protocol.TJoined)
	}
	if err != nil {
		return fmt.Errorf("join rejected: %w", err)
	}
	g.rememberChannels(srv.URL, channelChange{add: []string{c.Channel}})
	if level != nil {
		dir, cfg, err := g.loadConfig()
		if err != nil {
			return err
		}
		cfg.SetOverride(srv.URL, c.Channel, false, *level)
		if err := cfg.Save(dir); err != nil {
			return fmt.Errorf("joined %s, but could not record its permission level: %w", c.Channel, err)
		}
	}
	if g.JSON {
		var perm *string
		if level != nil {
			s := level.String()
			perm = &s
		}
		return g.printJSON(struct {
			Channel string  `json:"channel"`
			Server  string  `json:"server"`
			Perm    *string `json:"perm"`
		}{c.Channel, srv.URL, perm})
	}
	g.printf("✓ joined %s\n", c.Channel)
	if level != nil {
		g.printf("✓ permission for %s %s -> %s\n", srv.URL, c.Channel, level)
	}
	return nil
}
