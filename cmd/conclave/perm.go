package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

// PermCmd groups the local permission verbs. Levels live in config.toml
// and are never sent to a server.
type PermCmd struct {
	Set  PermSetCmd  `cmd:"" help:"Set the default level, or one channel's or the whispers' level on a server."`
	Show PermShowCmd `cmd:"" help:"Show the default level and every override."`
}

// PermSetCmd sets one level. Unlike other verbs it reads --server only when
// typed (never $CONCLAVE_SERVER): LEVEL alone sets the default.
type PermSetCmd struct {
	Level   string `arg:"" help:"mute, notify, converse or act."`
	Server  string `name:"server" placeholder:"URL" help:"The server the override is for (default with --channel or --whisper: the only registered server)."`
	Channel string `name:"channel" placeholder:"CHANNEL" help:"Set this channel's level."`
	Whisper bool   `name:"whisper" help:"Set the level of whispers from the server."`
}

// Run updates config.toml.
func (c *PermSetCmd) Run(g *Globals) error {
	level, err := identity.ParseLevel(c.Level)
	if err != nil {
		return err
	}
	switch {
	case c.Channel != "" && c.Whisper:
		return errors.New("--channel and --whisper are mutually exclusive")
	case c.Server != "" && c.Channel == "" && !c.Whisper:
		return errors.New("--server needs an explicit scope: add --channel NAME or --whisper (perm set LEVEL alone sets the default)")
	case c.Channel != "":
		if err := protocol.CheckName(c.Channel); err != nil {
			return fmt.Errorf("invalid channel name %q: %w", c.Channel, err)
		}
	}
	dir, cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	o := permOverride{Level: level.String()}
	var scope string
	if c.Channel == "" && !c.Whisper {
		cfg.DefaultPermission = level
		scope = "default"
	} else {
		server := c.Server
		if server == "" {
			s, err := cfg.SelectServer("")
			if err != nil {
				return fmt.Errorf("--channel and --whisper without --server need exactly one registered server: %w", err)
			}
			server = s.URL
		}
		cfg.SetOverride(server, c.Channel, c.Whisper, level)
		o.Server, o.Whisper = &server, c.Whisper
		if c.Channel != "" {
			o.Channel = &c.Channel
		}
		scope = server + " " + scopeName(c.Channel, c.Whisper)
	}
	if err := cfg.Save(dir); err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(o)
	}
	g.printf("✓ permission updated: %s -> %s (bridges started from now on use it; a running session changes its level with its set_perm tool)\n", scope, level)
	return nil
}

// PermShowCmd prints the permission table.
type PermShowCmd struct {
	Server string `name:"server" placeholder:"URL" help:"Only this server's overrides."`
}

// Run prints `default: <level>` and then `<server> <channel|<whisper>> -> <level>`
// per override, in file order.
func (c *PermShowCmd) Run(g *Globals) error {
	_, cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(permTable(cfg, c.Server))
	}
	writePermTable(g.Stdout, cfg, c.Server)
	return nil
}

// permOverride is one override in --json output.
type permOverride struct {
	Server  *string `json:"server"`
	Channel *string `json:"channel"`
	Whisper bool    `json:"whisper"`
	Level   string  `json:"level"`
}

// permDoc is the permission table in --json output.
type permDoc struct {
	Default   string         `json:"default"`
	Overrides []permOverride `json:"overrides"`
}

func permTable(cfg *identity.Config, server string) permDoc {
	d := permDoc{Default: cfg.DefaultPermission.String(), Overrides: []permOverride{}}
	for _, o := range cfg.Overrides {
		if server != "" && o.Server != server {
			continue
		}
		po := permOverride{Server: &o.Server, Whisper: o.Whisper, Level: o.Level.String()}
		if !o.Whisper {
			po.Channel = &o.Channel
		}
		d.Overrides = append(d.Overrides, po)
	}
	return d
}

func writePermTable(w io.Writer, cfg *identity.Config, server string) {
	fmt.Fprintf(w, "default: %s\n", cfg.DefaultPermission)
	for _, o := range cfg.Overrides {
		if server != "" && o.Server != server {
			continue
		}
		fmt.Fprintf(w, "%s %s -> %s\n", o.Server, scopeName(o.Channel, o.Whisper), o.Level)
	}
}

// scopeName is an override's scope as the table shows it.
func scopeName(channel string, whisper bool) string {
	if whisper {
		return "<whisper>"
	}
	return channel
}
