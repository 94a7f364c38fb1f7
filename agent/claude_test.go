package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The user's own files, written the way people and Claude Code write
// them (tabs in one, two spaces in the other).
const (
	userMCP = "{\n\t\"mcpServers\": {\n\t\t\"github\": {\"command\": \"gh-mcp\", \"args\": [\"--stdio\"]}\n\t}\n}\n"
	userSet = `{
  "permissions": {
    "allow": [
      "Bash(go test:*)"
    ]
  },
  "hooks": {
    "PostToolUse": [
      {
        "matcher": "Write",
        "hooks": [
          {
            "type": "command",
            "command": "gofmt -l ."
          }
        ]
      }
    ]
  },
  "enabledMcpjsonServers": [
    "github"
  ]
}
`
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshot returns every file under dir, by relative path.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func plan(t *testing.T, o *Options) *Plan {
	t.Helper()
	p, err := ClaudeCode(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%v in %s", err, s)
	}
	return v
}

// TestClaudeCodeRoundTrip sets up a project whose files already hold the
// user's own entries: dry-run writes nothing, setup keeps every entry of
// the user's and is idempotent, and remove restores the files byte for
// byte.
func TestClaudeCodeRoundTrip(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{".mcp.json": userMCP, ".claude/settings.local.json": userSet, ".claude/settings.json": "{\"model\": \"opus\"}\n"})
	before := snapshot(t, dir)
	o := &Options{Project: dir, Bridge: []string{"/opt/conclave", "--config-dir", "/cfg", "bridge", "--join", "ops"}, Stop: true}

	// Dry run: a plan with diffs, nothing written.
	p := plan(t, o)
	if len(p.Changes) != 3 {
		t.Fatalf("changes = %d, want .mcp.json, settings.local.json and the record", len(p.Changes))
	}
	d := p.Changes[0].Diff()
	if !strings.HasPrefix(d, "--- a/.mcp.json\n+++ b/.mcp.json\n@@ ") || !strings.Contains(d, "+      \"command\": \"/opt/conclave\",") {
		t.Errorf("diff of .mcp.json:\n%s", d)
	}
	if got := snapshot(t, dir); !equalMaps(got, before) {
		t.Fatal("planning wrote files")
	}

	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, dir)
	mcp := decode(t, after[".mcp.json"])["mcpServers"].(map[string]any)
	if mcp["github"] == nil {
		t.Error("the user's github server is gone")
	}
	c := mcp["conclave"].(map[string]any)
	if c["command"] != "/opt/conclave" || strings.Join(toStrings(c["args"]), " ") != "--config-dir /cfg bridge --join ops --delivery hooks" {
		t.Errorf("conclave entry = %v", c)
	}
	set := decode(t, after[".claude/settings.local.json"])
	if set["permissions"] == nil || strings.Join(toStrings(set["enabledMcpjsonServers"]), ",") != "github,conclave" {
		t.Errorf("settings = %v", set)
	}
	hooks := set["hooks"].(map[string]any)
	post := hooks["PostToolUse"].([]any)
	if len(post) != 2 || post[0].(map[string]any)["matcher"] != "Write" {
		t.Errorf("PostToolUse = %v: the user's hook must stay first", post)
	}
	if hooks["SessionStart"] != nil {
		t.Error("a SessionStart mcp_tool hook fails visibly at Claude Code's startup; setup must not write one")
	}
	for _, ev := range []string{"UserPromptSubmit", "PostToolUse", "Stop"} {
		groups := hooks[ev].([]any)
		h := groups[len(groups)-1].(map[string]any)["hooks"].([]any)[0].(map[string]any)
		if h["type"] != "mcp_tool" || h["server"] != "conclave" || h["tool"] != "inbox_hook" || h["input"].(map[string]any)["event"] != ev {
			t.Errorf("%s hook = %v", ev, h)
		}
	}
	if after[".claude/settings.json"] != before[".claude/settings.json"] {
		t.Error("settings.json was touched")
	}

	// Idempotent.
	if p := plan(t, o); len(p.Changes) != 0 {
		t.Errorf("a second setup changes %d files: %s", len(p.Changes), p.Changes[0].Diff())
	}

	// Remove restores the files exactly.
	p = plan(t, &Options{Project: dir, Remove: true})
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	if got := snapshot(t, dir); !equalMaps(got, before) {
		t.Errorf("after remove:\n%v\nwant:\n%v", got, before)
	}
	if p := plan(t, &Options{Project: dir, Remove: true}); len(p.Changes) != 0 {
		t.Errorf("a second remove changes %d files", len(p.Changes))
	}
}

// TestClaudeCodeFreshProject sets up an empty project and removes it
// again: nothing is left behind.
func TestClaudeCodeFreshProject(t *testing.T) {
	dir := t.TempDir()
	o := &Options{Project: dir, Bridge: []string{"conclave", "bridge"}}
	if err := plan(t, o).Apply(); err != nil {
		t.Fatal(err)
	}
	got := snapshot(t, dir)
	if len(got) != 3 || !strings.Contains(got[".claude/settings.local.json"], `"UserPromptSubmit"`) || strings.Contains(got[".claude/settings.local.json"], `"Stop"`) {
		t.Errorf("fresh setup wrote %v", got)
	}
	if err := plan(t, &Options{Project: dir, Remove: true}).Apply(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}

// TestClaudeCodeUserEdits: the user's own conclave entry is switched to
// hooks and restored; entries the user added after setup survive remove.
func TestClaudeCodeUserEdits(t *testing.T) {
	dir := t.TempDir()
	own := "{\n  \"mcpServers\": {\n    \"conclave\": {\n      \"command\": \"conclave\",\n      \"args\": [\"bridge\", \"--delivery\", \"push\", \"--as\", \"me\"]\n    }\n  }\n}\n"
	writeFiles(t, dir, map[string]string{".mcp.json": own})
	if err := plan(t, &Options{Project: dir, Bridge: []string{"/x/conclave", "bridge"}}).Apply(); err != nil {
		t.Fatal(err)
	}
	c := decode(t, snapshot(t, dir)[".mcp.json"])["mcpServers"].(map[string]any)["conclave"].(map[string]any)
	if c["command"] != "conclave" || strings.Join(toStrings(c["args"]), " ") != "bridge --as me --delivery hooks" {
		t.Errorf("the user's entry became %v", c)
	}
	// The user adds a server and a hook of their own after setup.
	m := snapshot(t, dir)
	writeFiles(t, dir, map[string]string{
		".mcp.json":                   strings.Replace(m[".mcp.json"], `"mcpServers": {`, `"mcpServers": {"later": {"command": "x"},`, 1),
		".claude/settings.local.json": strings.Replace(m[".claude/settings.local.json"], `"hooks": {`, `"hooks": {"Notification": [{"hooks": [{"type": "command", "command": "notify-send hi"}]}],`, 1),
	})
	if err := plan(t, &Options{Project: dir, Remove: true}).Apply(); err != nil {
		t.Fatal(err)
	}
	got := snapshot(t, dir)
	servers := decode(t, got[".mcp.json"])["mcpServers"].(map[string]any)
	if servers["later"] == nil || strings.Join(toStrings(servers["conclave"].(map[string]any)["args"]), " ") != "bridge --delivery push --as me" {
		t.Errorf(".mcp.json after remove: %s", got[".mcp.json"])
	}
	set := decode(t, got[".claude/settings.local.json"])
	if set["enabledMcpjsonServers"] != nil || len(set["hooks"].(map[string]any)) != 1 || set["hooks"].(map[string]any)["Notification"] == nil {
		t.Errorf("settings after remove: %s", got[".claude/settings.local.json"])
	}
	if _, ok := got[".claude/conclave-setup.json"]; ok {
		t.Error("the record was left behind")
	}
}

func TestClaudeCodeRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{".mcp.json": "{not json"})
	if _, err := ClaudeCode(&Options{Project: dir, Bridge: []string{"conclave", "bridge"}}); err == nil || !strings.Contains(err.Error(), ".mcp.json is not valid JSON") {
		t.Errorf("err = %v", err)
	}
	if _, err := ClaudeCode(&Options{Project: filepath.Join(dir, "nope"), Bridge: []string{"c"}}); err == nil {
		t.Error("a missing project was accepted")
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
