package identity

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// UpsertServer records a registration, replacing the one with the same URL
// in place or appending a new one.
func (c *Config) UpsertServer(s Server) {
	for i := range c.Servers {
		if sameURL(c.Servers[i].URL, s.URL) {
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
		if sameURL(o.Server, url) {
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
	for i := range c.Servers {
		if sameURL(c.Servers[i].URL, url) {
			return i
		}
	}
	return -1
}

// NormalizeURL returns a server URL in the one spelling config.toml keeps:
// scheme ws or wss (http and https are mapped to them, as a WebSocket
// client does), scheme and host in lower case, no trailing slash on an
// empty path. A URL without a scheme, or with another one, is an error
// that says what to type.
func NormalizeURL(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", errors.New("empty server URL: want ws://host:port or wss://host")
	}
	if !strings.Contains(s, "://") {
		return "", fmt.Errorf("server URL %q has no scheme: use ws://%s (plain) or wss://%s (TLS)", raw, s, s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("invalid server URL %q: want ws://host:port or wss://host", raw)
	}
	switch strings.ToLower(u.Scheme) {
	case "ws", "http":
		u.Scheme = "ws"
	case "wss", "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("invalid server URL %q: the scheme must be ws:// or wss://, not %s://", raw, u.Scheme)
	}
	if u.Host == "" {
		return "", fmt.Errorf("invalid server URL %q: no host", raw)
	}
	u.Host = strings.ToLower(u.Host)
	if u.Path == "/" && u.RawQuery == "" && u.Fragment == "" {
		u.Path = ""
	}
	return u.String(), nil
}

// sameURL reports whether two server URLs name the same server, comparing
// their normalized spellings (config files written before normalization
// may hold http:// ones).
func sameURL(a, b string) bool {
	if a == b {
		return true
	}
	na, errA := NormalizeURL(a)
	nb, errB := NormalizeURL(b)
	return errA == nil && errB == nil && na == nb
}
