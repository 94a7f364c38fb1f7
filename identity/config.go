package identity

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/conclave/conclave/atomicfile"
	"github.com/conclave/conclave/regfile"

	"github.com/BurntSushi/toml"
)

// ConfigFile is the name of the config file inside the config dir.
const ConfigFile = "config.toml"

// DefaultEmitBudget is the emit_budget of a config that does not set one:
// how many messages the bridge may send per channel per minute.
const DefaultEmitBudget = 30

// Config is the contents of config.toml:
//
//	default_permission = "notify"   # mute | notify | converse | act
//	emit_budget = 30                # messages per channel per minute, ≥ 1
//
//	[[servers]]                     # one per registration; url is the key
//	url = "ws://127.0.0.1:4390"
//	username = "alice"
//	machine = "wa"
//	server_id = "…"                 # the id pinned at registration
//
//	[[overrides]]                   # a level for one (server, channel) …
//	server = "ws://127.0.0.1:4390"
//	channel = "ops"
//	level = "converse"
//
//	[[overrides]]                   # … or for one server's whispers
//	server = "ws://127.0.0.1:4390"
//	whisper = true
//	level = "notify"
//
// Every key is optional. Unknown keys are ignored so that an older conclave
// can read a newer file. An override with neither channel nor whisper is a
// whisper override, which is how the Rust version wrote them. A Config is
// plain data, not safe for concurrent use; the zero value has the Mute
// default and no emit budget, so start from [NewConfig] or [LoadConfig].
type Config struct {
	DefaultPermission Level
	EmitBudget        int
	Servers           []Server   // in file order
	Overrides         []Override // in file order
}

// Server is one registration: this machine is enrolled as Username/Machine
// on the server at URL, which presented ServerID when it registered.
type Server struct {
	URL      string
	Username string
	Machine  string
	ServerID string // "" for a registration made before ids were pinned
}

// Override sets the level of one scope: a channel on a server, or (with
// Whisper set and Channel empty) the whispers from a server.
type Override struct {
	Server  string
	Channel string
	Whisper bool
	Level   Level
}

// NewConfig returns the config of an empty config dir: default permission
// notify, emit budget 30, no servers and no overrides.
func NewConfig() *Config {
	return &Config{DefaultPermission: DefaultLevel, EmitBudget: DefaultEmitBudget}
}

// MaxConfigFile caps config.toml: thousands of servers and overrides fit.
const MaxConfigFile = 1 << 20

// LoadConfig reads dir/config.toml. A missing file gives [NewConfig]'s
// defaults; a file that cannot be read or parsed, or that breaks a rule
// (an unknown level, a server listed twice, …), is an error naming the file.
func LoadConfig(dir string) (*Config, error) {
	path := filepath.Join(dir, ConfigFile)
	data, err := regfile.Read(path, MaxConfigFile)
	if errors.Is(err, fs.ErrNotExist) {
		return NewConfig(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	cfg, err := parseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %s", path, oneLine(err.Error()))
	}
	return cfg, nil
}

// Save writes c to dir/config.toml atomically, creating dir (mode 0700) if
// needed: it writes a temporary .config.toml.*.tmp in dir, syncs it, renames it over
// config.toml and syncs dir. On failure config.toml is untouched and no
// temporary file is left. Save refuses a config that [LoadConfig] would
// refuse. Comments in the old file are not kept.
func (c *Config) Save(dir string) error {
	data, err := encodeConfig(c)
	if err != nil {
		return fmt.Errorf("save config: %w", err)
	}
	if err := ensureDir(dir); err != nil {
		return fmt.Errorf("save config: create config dir: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, ConfigFile), data, 0o600); err != nil {
		return fmt.Errorf("save config: %w", err)
	}
	return nil
}

// The file format. Pointers tell a missing key from a zero value.
type fileConfig struct {
	DefaultPermission *string        `toml:"default_permission"`
	EmitBudget        *int           `toml:"emit_budget"`
	Servers           []fileServer   `toml:"servers,omitempty"`
	Overrides         []fileOverride `toml:"overrides,omitempty"`
}

type fileServer struct {
	URL      string `toml:"url"`
	Username string `toml:"username"`
	Machine  string `toml:"machine"`
	ServerID string `toml:"server_id,omitempty"`
}

type fileOverride struct {
	Server  string  `toml:"server"`
	Channel *string `toml:"channel,omitempty"`
	Whisper bool    `toml:"whisper,omitempty"`
	Level   *string `toml:"level"`
}

const fileHeader = "# conclave client configuration, rewritten by conclave (comments are not kept).\n\n"

// parseConfig parses and checks the contents of a config file.
func parseConfig(data []byte) (*Config, error) {
	var fc fileConfig
	if _, err := toml.Decode(string(data), &fc); err != nil {
		return nil, err
	}
	c := NewConfig()
	if fc.DefaultPermission != nil {
		l, err := ParseLevel(*fc.DefaultPermission)
		if err != nil {
			return nil, fmt.Errorf("default_permission: %w", err)
		}
		c.DefaultPermission = l
	}
	if fc.EmitBudget != nil {
		c.EmitBudget = *fc.EmitBudget
	}
	for _, s := range fc.Servers {
		c.Servers = append(c.Servers, Server(s))
	}
	for i, o := range fc.Overrides {
		ov := Override{Server: o.Server, Whisper: o.Whisper}
		if o.Channel != nil {
			if *o.Channel == "" {
				return nil, fmt.Errorf("[[overrides]] #%d: empty channel (leave it out and set whisper = true for the whisper scope)", i+1)
			}
			ov.Channel = *o.Channel
		} else {
			ov.Whisper = true
		}
		if o.Level == nil {
			return nil, fmt.Errorf("[[overrides]] #%d: missing level", i+1)
		}
		l, err := ParseLevel(*o.Level)
		if err != nil {
			return nil, fmt.Errorf("[[overrides]] #%d: %w", i+1, err)
		}
		ov.Level = l
		c.Overrides = append(c.Overrides, ov)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// encodeConfig renders c in the file format, after checking it.
func encodeConfig(c *Config) ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	perm := c.DefaultPermission.String()
	budget := c.EmitBudget
	fc := fileConfig{DefaultPermission: &perm, EmitBudget: &budget}
	for _, s := range c.Servers {
		fc.Servers = append(fc.Servers, fileServer(s))
	}
	for _, o := range c.Overrides {
		level := o.Level.String()
		fo := fileOverride{Server: o.Server, Whisper: o.Whisper, Level: &level}
		if !o.Whisper {
			ch := o.Channel
			fo.Channel = &ch
		}
		fc.Overrides = append(fc.Overrides, fo)
	}
	var buf bytes.Buffer
	buf.WriteString(fileHeader)
	enc := toml.NewEncoder(&buf)
	enc.Indent = ""
	if err := enc.Encode(fc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// validate checks the rules a config must keep, whether read or about to be
// written.
func (c *Config) validate() error {
	if !c.DefaultPermission.Valid() {
		return fmt.Errorf("default_permission: invalid permission level %d", int(c.DefaultPermission))
	}
	if c.EmitBudget < 1 {
		return fmt.Errorf("emit_budget must be at least 1, not %d", c.EmitBudget)
	}
	urls := make(map[string]bool, len(c.Servers))
	for i, s := range c.Servers {
		where := fmt.Sprintf("[[servers]] #%d", i+1)
		if s.URL == "" {
			return fmt.Errorf("%s: missing url", where)
		}
		where = fmt.Sprintf("%s (%s)", where, s.URL)
		if urls[s.URL] {
			return fmt.Errorf("%s: url listed twice", where)
		}
		urls[s.URL] = true
		if err := checkName("username", s.Username); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if err := checkName("machine name", s.Machine); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if hasControl(s.ServerID) {
			return fmt.Errorf("%s: invalid server_id %q", where, s.ServerID)
		}
	}
	type scope struct {
		server, channel string
		whisper         bool
	}
	scopes := make(map[scope]bool, len(c.Overrides))
	for i, o := range c.Overrides {
		where := fmt.Sprintf("[[overrides]] #%d", i+1)
		if o.Server == "" {
			return fmt.Errorf("%s: missing server", where)
		}
		switch {
		case o.Whisper && o.Channel != "":
			return fmt.Errorf("%s: channel and whisper are mutually exclusive", where)
		case !o.Whisper:
			if err := checkName("channel name", o.Channel); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
		}
		if !o.Level.Valid() {
			return fmt.Errorf("%s: invalid permission level %d", where, int(o.Level))
		}
		k := scope{o.Server, o.Channel, o.Whisper}
		if scopes[k] {
			return fmt.Errorf("%s: a second override for %s %s", where, o.Server, o.scopeName())
		}
		scopes[k] = true
	}
	return nil
}

// scopeName is the override's scope as perm show prints it: the channel,
// or <whisper>.
func (o Override) scopeName() string {
	if o.Whisper {
		return "<whisper>"
	}
	return o.Channel
}

// oneLine folds an error text onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
