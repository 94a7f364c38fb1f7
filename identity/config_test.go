package identity

import (
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func sampleConfig() *Config {
	c := NewConfig()
	c.DefaultPermission = Converse
	c.EmitBudget = 12
	c.Servers = []Server{
		{URL: "ws://127.0.0.1:4390", Username: "alice", Machine: "wa", ServerID: "srv-1"},
		{URL: "wss://chat.example/", Username: "alice", Machine: "wa"},
	}
	c.Overrides = []Override{
		{Server: "ws://127.0.0.1:4390", Channel: "ops", Level: Act},
		{Server: "ws://127.0.0.1:4390", Whisper: true, Level: Mute},
		{Server: "wss://chat.example/", Channel: "ops", Level: Notify},
	}
	return c
}

func TestConfigRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "conclave")
	want := sampleConfig()
	if err := want.Save(dir); err != nil {
		t.Fatal(err)
	}
	checkMode(t, dir, 0o700)
	checkMode(t, filepath.Join(dir, ConfigFile), 0o600)
	got, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}

	data, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, s := range []string{
		`default_permission = "converse"`,
		`emit_budget = 12`,
		`[[servers]]`,
		`server_id = "srv-1"`,
		`[[overrides]]`,
		`channel = "ops"`,
		`whisper = true`,
		`level = "act"`,
		`level = "mute"`,
	} {
		if !strings.Contains(text, s) {
			t.Errorf("saved file lacks %q:\n%s", s, text)
		}
	}
	if strings.Count(text, "server_id") != 1 {
		t.Errorf("an empty server_id was written:\n%s", text)
	}
	if strings.Contains(text, "whisper = false") || strings.Contains(text, `channel = ""`) {
		t.Errorf("empty scope fields were written:\n%s", text)
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	for _, tc := range []struct {
		name, content string
	}{
		{"missing file", ""},
		{"empty file", "\n"},
		{"only comments", "# nothing here\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.content != "" {
				if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := LoadConfig(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got.DefaultPermission != Notify || got.EmitBudget != 30 || len(got.Servers) != 0 || len(got.Overrides) != 0 {
				t.Errorf("got %+v, want notify, 30 and nothing else", got)
			}
		})
	}
}

func TestLoadConfigRustFormat(t *testing.T) {
	// What the Rust version wrote: no emit_budget, no server_id, and a
	// whisper override is one without a channel.
	const rust = `default_permission = "act"

[[servers]]
url = "wss://example.host"
username = "aaron"
machine = "workstation"

[[overrides]]
server = "wss://example.host"
channel = "ops"
level = "act"

[[overrides]]
server = "wss://example.host"
level = "converse"
`
	c, err := parseConfig([]byte(rust))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		DefaultPermission: Act,
		EmitBudget:        30,
		Servers:           []Server{{URL: "wss://example.host", Username: "aaron", Machine: "workstation"}},
		Overrides: []Override{
			{Server: "wss://example.host", Channel: "ops", Level: Act},
			{Server: "wss://example.host", Whisper: true, Level: Converse},
		},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v, want %+v", c, want)
	}
}

var badConfigs = []struct {
	name, content, wantErr string
}{
	{"not toml", "this is = = not toml", "toml:"},
	{"unknown level", `default_permission = "loud"`, `unknown permission level "loud"`},
	{"level of wrong type", `default_permission = 3`, "default_permission"},
	{"zero emit budget", `emit_budget = 0`, "emit_budget must be at least 1"},
	{"negative emit budget", `emit_budget = -5`, "emit_budget"},
	{"server without url", "[[servers]]\nusername = \"a\"\nmachine = \"m\"", "missing url"},
	{"server without username", "[[servers]]\nurl = \"ws://h\"\nmachine = \"m\"", "missing username"},
	{"machine with slash", "[[servers]]\nurl = \"ws://h\"\nusername = \"a\"\nmachine = \"m/x\"", "invalid machine name"},
	{"server twice", "[[servers]]\nurl = \"ws://h\"\nusername = \"a\"\nmachine = \"m\"\n[[servers]]\nurl = \"ws://h\"\nusername = \"b\"\nmachine = \"m\"", "listed twice"},
	{"override without level", "[[overrides]]\nserver = \"ws://h\"\nchannel = \"ops\"", "missing level"},
	{"override with bad level", "[[overrides]]\nserver = \"ws://h\"\nchannel = \"ops\"\nlevel = \"x\"", `unknown permission level "x"`},
	{"override without server", "[[overrides]]\nchannel = \"ops\"\nlevel = \"act\"", "missing server"},
	{"override with both scopes", "[[overrides]]\nserver = \"ws://h\"\nchannel = \"ops\"\nwhisper = true\nlevel = \"act\"", "mutually exclusive"},
	{"override with empty channel", "[[overrides]]\nserver = \"ws://h\"\nchannel = \"\"\nlevel = \"act\"", "empty channel"},
	{"override twice", "[[overrides]]\nserver = \"ws://h\"\nwhisper = true\nlevel = \"act\"\n[[overrides]]\nserver = \"ws://h\"\nlevel = \"mute\"", "second override"},
}

func TestLoadConfigErrors(t *testing.T) {
	for _, tc := range badConfigs {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, ConfigFile)
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadConfig(dir)
			if err == nil {
				t.Fatal("got no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, tc.wantErr) {
				t.Errorf("got %q, want it to name %s and contain %q", msg, path, tc.wantErr)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
		})
	}
}

func TestLoadConfigUnreadable(t *testing.T) {
	dir := t.TempDir()
	// A directory where the file should be cannot be read as one.
	if err := os.Mkdir(filepath.Join(dir, ConfigFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(dir); err == nil || !strings.Contains(err.Error(), ConfigFile) {
		t.Errorf("got %v, want an error naming %s", err, ConfigFile)
	}
}

func TestSaveIsAtomic(t *testing.T) {
	dir := t.TempDir()
	c := sampleConfig()
	for range 3 {
		if err := c.Save(dir); err != nil {
			t.Fatal(err)
		}
		c.EmitBudget++
	}
	assertNoTmp(t, dir)

	// A failed rename (config.toml is a directory) leaves nothing behind.
	dir = t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, ConfigFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(dir); err == nil {
		t.Error("Save over a directory succeeded")
	}
	assertNoTmp(t, dir)
}

func TestSaveRefusesInvalidConfig(t *testing.T) {
	dir := t.TempDir()
	if err := sampleConfig().Save(dir); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
	for _, mutate := range []func(*Config){
		func(c *Config) { c.EmitBudget = 0 },
		func(c *Config) { c.DefaultPermission = Level(7) },
		func(c *Config) { c.UpsertServer(Server{URL: "ws://x", Username: "", Machine: "m"}) },
		func(c *Config) {
			c.Overrides = append(c.Overrides, Override{Server: "ws://x", Channel: "a", Whisper: true})
		},
	} {
		c := sampleConfig()
		mutate(c)
		if err := c.Save(dir); err == nil {
			t.Errorf("Save of %+v succeeded", c)
		}
	}
	after, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
	if string(before) != string(after) {
		t.Error("a refused Save changed the file")
	}
	assertNoTmp(t, dir)
}

func assertNoTmp(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left in %s", e.Name(), dir)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	good, err := encodeConfig(sampleConfig())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(""))
	f.Add([]byte("default_permission = \"act\"\nemit_budget = 5\n"))
	f.Add([]byte("[[overrides]]\nserver = \"ws://h\"\nlevel = \"converse\"\n"))
	for _, tc := range badConfigs {
		f.Add([]byte(tc.content))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseConfig(data)
		if err != nil {
			return
		}
		out, err := encodeConfig(c)
		if err != nil {
			t.Fatalf("a parsed config does not encode: %v\n%+v", err, c)
		}
		back, err := parseConfig(out)
		if err != nil {
			t.Fatalf("an encoded config does not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip changed the config:\n got %+v\nwant %+v", back, c)
		}
	})
}

// TestLoadConfigCaps: config.toml must be a regular file of at most
// MaxConfigFile bytes; a symlink to one (a mounted secret) is read.
func TestLoadConfigCaps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ConfigFile)
	if err := os.WriteFile(path, []byte("# "+strings.Repeat("x", MaxConfigFile)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(dir); err == nil || err.Error() != "read config file: "+path+": larger than 1 MiB" {
		t.Errorf("a config over the cap: %v", err)
	}
	if runtime.GOOS == "windows" {
		return
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", path); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(dir); err == nil || !strings.Contains(err.Error(), "not a regular file (it is a device)") {
		t.Errorf("config.toml -> /dev/zero: %v", err)
	}
	real := filepath.Join(t.TempDir(), "conclave.toml")
	if err := os.WriteFile(real, []byte("default_permission = \"converse\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, path); err != nil {
		t.Fatal(err)
	}
	if cfg, err := LoadConfig(dir); err != nil || cfg.DefaultPermission.String() != "converse" {
		t.Errorf("config.toml as a symlink: %+v, %v", cfg, err)
	}
}
