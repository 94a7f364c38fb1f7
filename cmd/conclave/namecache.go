package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

// The channel names the completion scripts offer come from a small cache
// in the config dir, written by the commands that learn names from a
// server anyway (channel list, channel create/delete/rename, join, tail,
// the bridge's list_channels and join_channel), so that completing never
// touches the network. A server's list older than channelCacheMaxAge is
// neither offered nor kept.
const (
	channelCacheFile   = "completion-channels.json"
	channelCacheMaxAge = 7 * 24 * time.Hour
	channelCacheMax    = 1000 // names kept per server
)

// channelCache is the cache file's content.
type channelCache struct {
	Servers map[string]*cachedServer `json:"servers"`
}

// cachedServer is one server's channel names and when they were last
// written.
type cachedServer struct {
	UpdatedMs int64    `json:"updated_ms"`
	Channels  []string `json:"channels"`
}

// channelChange is one update of a server's cached names.
type channelChange struct {
	replace bool     // names is the server's whole list
	add     []string // names seen (joined, created, listed)
	remove  string   // a name deleted, or renamed from
}

// loadChannelCache reads the cache in dir; a missing or unreadable file is
// an empty cache.
func loadChannelCache(dir string) *channelCache {
	c := &channelCache{Servers: map[string]*cachedServer{}}
	b, err := os.ReadFile(filepath.Join(dir, channelCacheFile))
	if err != nil || json.Unmarshal(b, c) != nil || c.Servers == nil {
		return &channelCache{Servers: map[string]*cachedServer{}}
	}
	return c
}

// updateChannelCache applies ch to server's names in the cache in dir,
// drops the lists older than channelCacheMaxAge and writes the file back
// atomically (a concurrent writer's update may be lost; the cache is only
// a hint).
func updateChannelCache(dir, server string, ch channelChange, now time.Time) error {
	c := loadChannelCache(dir)
	for url, s := range c.Servers {
		if s == nil || now.Sub(time.UnixMilli(s.UpdatedMs)) > channelCacheMaxAge {
			delete(c.Servers, url)
		}
	}
	s := c.Servers[server]
	if s == nil || ch.replace {
		s = &cachedServer{}
		c.Servers[server] = s
	}
	s.UpdatedMs = now.UnixMilli()
	if ch.remove != "" {
		s.Channels = slices.DeleteFunc(s.Channels, func(n string) bool { return n == ch.remove })
	}
	for _, n := range ch.add {
		if protocol.CheckName(n) == nil && !slices.Contains(s.Channels, n) {
			s.Channels = append(s.Channels, n)
		}
	}
	if len(s.Channels) > channelCacheMax {
		s.Channels = s.Channels[len(s.Channels)-channelCacheMax:]
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	// Replaced by a rename, so that a reader never sees half a file, but
	// not synced: the cache is a hint, and a lost update costs nothing.
	f, err := os.CreateTemp(dir, "."+channelCacheFile+".*.tmp")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, channelCacheFile))
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// cachedChannels returns the cached names of server, or of every server
// if server is "", that are younger than channelCacheMaxAge, sorted.
func cachedChannels(dir, server string, now time.Time) []string {
	var out []string
	for url, s := range loadChannelCache(dir).Servers {
		if s == nil || (server != "" && url != server) || now.Sub(time.UnixMilli(s.UpdatedMs)) > channelCacheMaxAge {
			continue
		}
		for _, n := range s.Channels {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

// rememberChannels records ch for server in this config dir's cache. It
// never fails a command: a cache that cannot be written is logged at
// debug level.
func (g *Globals) rememberChannels(server string, ch channelChange) {
	dir, err := g.ConfigDir()
	if err == nil {
		err = updateChannelCache(dir, server, ch, time.Now())
	}
	if err != nil {
		g.Logger.Debug("could not update the completion cache", "err", err)
	}
}

// CompleteNamesCmd prints the server or channel names the completion
// scripts offer, one a line. It reads only local files (config.toml and
// the channel cache), never the network, and prints nothing at all on
// any error, so that a shell's completion can run it blindly.
type CompleteNamesCmd struct {
	Kind   string `arg:"" enum:"servers,channels" help:"servers (registered in config.toml) or channels (cached)."`
	Server string `name:"server" env:"CONCLAVE_SERVER" placeholder:"URL" help:"Only this server's channels."`
}

// Run prints the names.
func (c *CompleteNamesCmd) Run(g *Globals) error {
	dir, err := g.ConfigDir()
	if err != nil {
		return nil
	}
	var names []string
	switch c.Kind {
	case "servers":
		cfg, err := identity.LoadConfig(dir)
		if err != nil {
			return nil
		}
		for _, s := range cfg.Servers {
			names = append(names, s.URL)
		}
	case "channels":
		server := ""
		if c.Server != "" {
			if cfg, err := identity.LoadConfig(dir); err == nil {
				if s, err := cfg.SelectServer(c.Server); err == nil {
					server = s.URL
				}
			}
			if server == "" {
				return nil // an unknown server has no cached channels
			}
		}
		names = cachedChannels(dir, server, time.Now())
	}
	for _, n := range names {
		if shellSafe(n) {
			g.printf("%s\n", n)
		}
	}
	return nil
}

// shellSafe reports whether a name can be offered as a completion word in
// every shell as is: no whitespace, quotes, backslashes or other
// characters a shell would take apart. Other names are left out.
func shellSafe(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return r <= ' ' || strings.ContainsRune("\"'`\\$&|;<>()[]{}*?!#~=%^", r) || r == 0x7f
	})
}
