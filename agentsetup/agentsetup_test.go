package agentsetup

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/conclave/conclave/orderedjson"
)

// files snapshots every file under dirs, path → content.
func files(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range dirs {
		filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			if e.IsDir() {
				out[p+"/"] = ""
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			out[p] = string(data)
			return nil
		})
	}
	return out
}

func sameFiles(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for p, w := range want {
		if g, ok := got[p]; !ok {
			t.Errorf("%s: %s is gone", what, p)
		} else if g != w {
			t.Errorf("%s: %s is\n%s\nwant\n%s", what, p, g, w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: %s is left over", what, p)
		}
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

type runtime struct {
	name string
	plan func(*Options) (*Plan, error)
}

var runtimes = []runtime{{"codex", Codex}, {"gemini", Gemini}}

func options(home, project string) *Options {
	return &Options{
		Project: project,
		Bridge:  []string{"/opt/conclave bin/conclave", "bridge", "--delivery", "hooks", "--join", "ops"},
		Hook:    []string{"/opt/conclave bin/conclave", "hook", "x"},
		Home:    home,
	}
}

func apply(t *testing.T, rt runtime, o *Options) *Plan {
	t.Helper()
	p, err := rt.plan(o)
	if err != nil {
		t.Fatalf("%s: %v", rt.name, err)
	}
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRoundTrip sets up, sets up again (no change), dry-runs and removes,
// on an empty project and on one whose files hold the user's own entries:
// removal leaves every file as it was, byte for byte. (A file that is
// empty once setup's entries are out is deleted: setup cannot tell an
// empty file of the user's from one it created.)
func TestRoundTrip(t *testing.T) {
	seeds := map[string]map[string]string{
		"empty": {},
		"user entries": {
			".codex/config.toml":      "# my settings\nmodel = \"o3\"\n\n[mcp_servers.mine]\ncommand = \"mine\"\n\n[[hooks.UserPromptSubmit]]\n[[hooks.UserPromptSubmit.hooks]]\ntype = \"command\"\ncommand = \"echo mine\"\n",
			"HOME/.codex/config.toml": "model = \"o3\"\n\n[projects.\"/x\"]\ntrust_level = \"trusted\"\n",
			".gemini/settings.json":   "{\n  \"theme\": \"dark\",\n  \"mcpServers\": {\n    \"mine\": {\n      \"command\": \"mine\"\n    }\n  },\n  \"hooks\": {\n    \"BeforeAgent\": [\n      {\n        \"hooks\": [\n          {\n            \"type\": \"command\",\n            \"command\": \"echo mine\"\n          }\n        ]\n      }\n    ]\n  }\n}\n",
		},
	}
	for _, rt := range runtimes {
		for name, seed := range seeds {
			for _, stop := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/stop=%v", rt.name, name, stop), func(t *testing.T) {
					root := t.TempDir()
					home, project := filepath.Join(root, "home"), filepath.Join(root, "project")
					os.MkdirAll(home, 0o755)
					os.MkdirAll(project, 0o755)
					for p, data := range seed {
						if strings.HasPrefix(p, "HOME/") {
							write(t, filepath.Join(home, p[5:]), data)
						} else {
							write(t, filepath.Join(project, p), data)
						}
					}
					before := files(t, home, project)
					o := options(home, project)
					o.Stop = stop

					p := apply(t, rt, o)
					if !p.Changed() || p.Diff() == "" {
						t.Fatal("setup changed nothing")
					}
					after := files(t, home, project)
					for path, data := range before {
						if !strings.HasSuffix(path, "/") && !strings.Contains(after[path], strings.TrimSpace(strings.SplitN(data, "\n", 2)[0])) {
							t.Errorf("%s lost the user's first line", path)
						}
					}
					checkFormat(t, rt.name, project, home, stop)

					again, err := rt.plan(o)
					if err != nil {
						t.Fatal(err)
					}
					if again.Changed() || again.Diff() != "" {
						t.Errorf("a second setup would change:\n%s", again.Diff())
					}

					o.Remove = true
					dry, err := rt.plan(o)
					if err != nil {
						t.Fatal(err)
					}
					if !dry.Changed() {
						t.Fatal("removal would change nothing")
					}
					sameFiles(t, "after a dry run", files(t, home, project), after)

					apply(t, rt, o)
					sameFiles(t, "after removal", files(t, home, project), before)
					if p, err := rt.plan(o); err != nil || p.Changed() {
						t.Errorf("a second removal: %v, changed %v", err, p != nil && p.Changed())
					}
				})
			}
		}
	}
}

// TestStopHookOff: setting up again without Stop takes the Stop hook
// (Codex) or AfterAgent hook (Gemini CLI) out and keeps the others.
func TestStopHookOff(t *testing.T) {
	for _, rt := range runtimes {
		t.Run(rt.name, func(t *testing.T) {
			root := t.TempDir()
			home, project := filepath.Join(root, "home"), filepath.Join(root, "project")
			os.MkdirAll(home, 0o755)
			os.MkdirAll(project, 0o755)
			o := options(home, project)
			o.Stop = true
			apply(t, rt, o)
			checkFormat(t, rt.name, project, home, true)
			o.Stop = false
			apply(t, rt, o)
			checkFormat(t, rt.name, project, home, false)
		})
	}
}

// checkFormat parses what setup wrote as the runtime does and checks the
// entries it needs.
func checkFormat(t *testing.T, rt, project, home string, stop bool) {
	t.Helper()
	switch rt {
	case "codex":
		var cfg struct {
			MCP map[string]struct {
				Command                  string
				Args                     []string
				Required                 bool
				DefaultToolsApprovalMode string `toml:"default_tools_approval_mode"`
			} `toml:"mcp_servers"`
			Hooks map[string][]struct {
				Hooks []struct {
					Type, Command string
					Timeout       int
				}
			}
		}
		if _, err := toml.DecodeFile(filepath.Join(project, ".codex", "config.toml"), &cfg); err != nil {
			t.Fatal(err)
		}
		s := cfg.MCP["conclave"]
		if s.Command != "/opt/conclave bin/conclave" || strings.Join(s.Args, " ") != "bridge --delivery hooks --join ops" || !s.Required || s.DefaultToolsApprovalMode != "approve" {
			t.Errorf("mcp_servers.conclave = %+v", s)
		}
		want := map[string]int{"SessionStart": CodexHookTimeout, "UserPromptSubmit": CodexHookTimeout,
			"PostToolUse": CodexHookTimeout, "PermissionRequest": CodexPermissionTimeout}
		if stop {
			want["Stop"] = CodexHookTimeout
		} else if len(cfg.Hooks["Stop"]) != 0 {
			t.Errorf("a Stop hook without stop: %+v", cfg.Hooks["Stop"])
		}
		for ev, timeout := range want {
			g := cfg.Hooks[ev]
			if len(g) == 0 || g[len(g)-1].Hooks[0].Command != "'/opt/conclave bin/conclave' hook x" || g[len(g)-1].Hooks[0].Timeout != timeout {
				t.Errorf("hooks.%s = %+v", ev, g)
			}
		}
		var user struct {
			Hooks struct {
				State map[string]struct {
					TrustedHash string `toml:"trusted_hash"`
				}
			}
		}
		if _, err := toml.DecodeFile(filepath.Join(home, ".codex", "config.toml"), &user); err != nil {
			t.Fatal(err)
		}
		if len(user.Hooks.State) != len(want) {
			t.Errorf("trust entries %v", user.Hooks.State)
		}
		for k, v := range user.Hooks.State {
			if !strings.HasPrefix(k, filepath.Join(project, ".codex", "config.toml")+":") || !strings.HasPrefix(v.TrustedHash, "sha256:") {
				t.Errorf("trust entry %s = %v", k, v)
			}
		}
	case "gemini":
		data, err := os.ReadFile(filepath.Join(project, ".gemini", "settings.json"))
		if err != nil {
			t.Fatal(err)
		}
		o, err := orderedjson.ParseObject(data)
		if err != nil {
			t.Fatal(err)
		}
		sv, _ := o.Get("mcpServers")
		s, _ := sv.(*orderedjson.Object).Get("conclave")
		if !isOurServer(s) {
			t.Errorf("mcpServers.conclave = %s", orderedjson.Encode(s))
		}
		if tr, _ := s.(*orderedjson.Object).Get("trust"); tr != true {
			t.Errorf("the server is not trusted: %s", orderedjson.Encode(s))
		}
		hv, _ := o.Get("hooks")
		for _, ev := range append(slices.Clone(geminiEvents), geminiStop) {
			gv, _ := hv.(*orderedjson.Object).Get(ev)
			groups, _ := gv.([]any)
			installed := len(groups) > 0 && isOurGroup(groups[len(groups)-1])
			if want := ev != geminiStop || stop; installed != want {
				t.Errorf("hooks.%s = %s, want it installed: %v", ev, orderedjson.Encode(gv), want)
			}
		}
	}
}

// TestCodexTrustHash pins the hash to one the real Codex CLI 0.171.0
// accepted (its hook ran without --dangerously-bypass-hook-trust).
func TestCodexTrustHash(t *testing.T) {
	got := codexHookHash("user_prompt_submit", "/tmp/cg/w/hook.sh", 10)
	want := "sha256:91444a620b79e129d86dab1fdfd34ec31133a8e262cbdc68b02d61ee3e40699e"
	if got != want {
		t.Errorf("hash %s, want %s", got, want)
	}
}

// TestRefusals: setup leaves alone what it did not write and what it
// cannot safely change.
func TestRefusals(t *testing.T) {
	cases := []struct {
		name, rt, file, data, want string
		remove                     bool
	}{
		{"codex server of the user's", "codex", ".codex/config.toml", "[mcp_servers.conclave]\ncommand = \"other\"\n", "of its own", false},
		{"codex removal of the user's server", "codex", ".codex/config.toml", "[mcp_servers.conclave]\ncommand = \"other\"\n", "did not write", true},
		{"codex broken TOML", "codex", ".codex/config.toml", "model = \n", "not valid TOML", false},
		{"codex block without its end", "codex", ".codex/config.toml", codexBegin + "\n[x]\n", "has no", false},
		{"codex hooks of another shape", "codex", ".codex/config.toml", "[hooks]\nPostToolUse = \"x\"\n", "does not fit", false},
		{"gemini server of the user's", "gemini", ".gemini/settings.json", `{"mcpServers": {"conclave": {"command": "other"}}}`, "left alone", false},
		{"gemini broken JSON", "gemini", ".gemini/settings.json", `{"a": `, "not a JSON object", false},
		{"gemini hooks not a list", "gemini", ".gemini/settings.json", `{"hooks": {"BeforeAgent": {}}}`, "not a list", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			home, project := filepath.Join(root, "home"), filepath.Join(root, "project")
			os.MkdirAll(home, 0o755)
			write(t, filepath.Join(project, c.file), c.data)
			o := options(home, project)
			o.Remove = c.remove
			plan := Codex
			if c.rt == "gemini" {
				plan = Gemini
			}
			_, err := plan(o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error with %q", err, c.want)
			}
			if data, _ := os.ReadFile(filepath.Join(project, c.file)); string(data) != c.data {
				t.Errorf("the file changed to %q", data)
			}
		})
	}
}
