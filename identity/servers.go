package identity

import (
	"errors"
	"fmt"
	"strings"
)

// UpsertServer records a registration, replacing the one with the same URL
// in place or appending a new one.
func (c *Config) UpsertServer(s Server) {
	for i := range c.Servers {
		if c.Servers[i].URL == s.URL {
			c.Servers[i] = s
			return
		}
	}
	c.Servers = append(c.Servers, s)
}

// RemoveServer forgets the registration with exactly this URL and every
// override whose server is that URL, and returns how many overrides went.
// An unknown URL is an error and changes nothing.
func (c *Config) RemoveServer(url string) (removedOverrides int, err error) {
	i := c.serverIndex(url)
	if i < 0 {
		return 0, fmt.Errorf("no registration for `%s` (see `conclave server list`)", url)
	}
	c.Servers = append(c.Servers[:i], c.Servers[i+1:]...)
	kept := c.Overrides[:0]
	for _, o := range c.Overrides {
		if o.Server == url {
			removedOverrides++
			continue
		}
		kept = append(kept, o)
	}
	clear(c.Overrides[len(kept):])
	c.Overrides = kept
	return removedOverrides, nil
}

// FindServer returns the registration with exactly this URL. The pointer
// refers into c.Servers, so changes through it (recording a ServerID, say)
// are saved with c; it is invalidated by UpsertServer and RemoveServer.
func (c *Config) FindServer(url string) (*Server, bool) {
	if i := c.serverIndex(url); i >= 0 {
		return &c.Servers[i], true
	}
	return nil, false
}

// SelectServer picks the registration a command acts on. With flag set (a
// --server URL or $CONCLAVE_SERVER) it must be registered; with flag empty
// the config must hold exactly one registration. The returned pointer
// refers into c.Servers, as with [Config.FindServer].
func (c *Config) SelectServer(flag string) (*Server, error) {
	if flag != "" {
		if s, ok := c.FindServer(flag); ok {
			return s, nil
		}
		return nil, fmt.Errorf("not registered with %s (see `conclave register`)", flag)
	}
	switch len(c.Servers) {
	case 0:
		return nil, errors.New("no servers registered (see `conclave register`)")
	case 1:
		return &c.Servers[0], nil
	}
	urls := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		urls[i] = s.URL
	}
	return nil, fmt.Errorf("several servers registered; pass --server URL (one of: %s)", strings.Join(urls, ", "))
}

func (c *Config) serverIndex(url string) int {
	for i := range c.Servers {
		if c.Servers[i].URL == url {
			return i
		}
	}
	return -1
}
