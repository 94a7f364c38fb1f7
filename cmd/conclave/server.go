package main

import (
	"errors"
	"fmt"
)

// ServerCmd groups the local registration verbs. They never touch the
// network.
type ServerCmd struct {
	List   ServerListCmd   `cmd:"" aliases:"ls" help:"List the servers this machine is registered with."`
	Remove ServerRemoveCmd `cmd:"" aliases:"rm" help:"Forget a registration and its permission overrides (your account on the server is untouched)."`
}

// ServerListCmd lists registrations.
type ServerListCmd struct{}

// Run prints `<url>\t<user>/<machine>` per registration.
func (c *ServerListCmd) Run(g *Globals) error {
	_, cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	if g.JSON {
		type server struct {
			URL      string `json:"url"`
			Username string `json:"username"`
			Machine  string `json:"machine"`
			ServerID string `json:"server_id"`
		}
		out := make([]server, 0, len(cfg.Servers))
		for _, s := range cfg.Servers {
			out = append(out, server(s))
		}
		return g.printJSON(out)
	}
	if len(cfg.Servers) == 0 {
		g.printf("%s\n", noServers)
		return nil
	}
	for _, s := range cfg.Servers {
		g.printf("%s\t%s/%s\n", s.URL, s.Username, s.Machine)
	}
	return nil
}

// noServers is what verbs listing registrations print when there are none.
const noServers = "no servers registered (see `conclave register`)"

// ServerRemoveCmd forgets one registration.
type ServerRemoveCmd struct {
	URL    string `arg:"" optional:"" complete:"server" help:"The server's URL, exactly as registered."`
	Server string `name:"server" placeholder:"URL" help:"The same, as a flag."`
}

// Run removes the registration and its overrides from config.toml.
func (c *ServerRemoveCmd) Run(g *Globals) error {
	url := c.URL
	switch {
	case url == "" && c.Server == "":
		return errors.New("which server? give its URL (see `conclave server list`)")
	case url == "":
		url = c.Server
	case c.Server != "" && c.Server != url:
		return fmt.Errorf("two different servers given: %s and --server %s", url, c.Server)
	}
	dir, cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	n, err := cfg.RemoveServer(url)
	if err != nil {
		return err
	}
	if err := cfg.Save(dir); err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(struct {
			URL              string `json:"url"`
			OverridesRemoved int    `json:"overrides_removed"`
		}{url, n})
	}
	g.printf("✓ forgot `%s` (%d permission override(s) removed)\n", url, n)
	return nil
}
