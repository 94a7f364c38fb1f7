package identity

// SetOverride sets the level of one scope on server: the channel, or the
// server's whispers when whisper is true (channel is then ignored). An
// override for the same scope is replaced in place; a new one is appended.
func (c *Config) SetOverride(server, channel string, whisper bool, lvl Level) {
	if whisper {
		channel = ""
	}
	o := Override{Server: server, Channel: channel, Whisper: whisper, Level: lvl}
	for i := range c.Overrides {
		if c.Overrides[i].sameScope(server, channel, whisper) {
			c.Overrides[i] = o
			return
		}
	}
	c.Overrides = append(c.Overrides, o)
}

// Resolve returns the level of a scope: the override for exactly
// (server, channel), or (server, whisper) when whisper is true, else the
// default. There are no wildcards and no per-server layer; URLs and
// channel names are compared verbatim.
func (c *Config) Resolve(server, channel string, whisper bool) Level {
	if whisper {
		channel = ""
	}
	for _, o := range c.Overrides {
		if o.sameScope(server, channel, whisper) {
			return o.Level
		}
	}
	return c.DefaultPermission
}

func (o Override) sameScope(server, channel string, whisper bool) bool {
	if o.Server != server || o.Whisper != whisper {
		return false
	}
	return whisper || o.Channel == channel
}
