package agentsetup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
)

// Time limits, in seconds, that setup gives Codex hooks.
const (
	// CodexHookTimeout is the limit of the turn-boundary hooks;
	// `conclave hook codex` answers well within it.
	CodexHookTimeout = 10
	// CodexPermissionTimeout is the limit of the PermissionRequest hook:
	// how long a person has to answer from an approver machine before
	// `conclave hook codex` (a little earlier) leaves the request to
	// Codex's own approval prompt.
	CodexPermissionTimeout = 120
)

// codexEvent is one Codex hook event setup installs: its name in the
// config, its key in Codex's trust state, and its time limit.
type codexEvent struct {
	name, key string
	timeout   int
}

// codexEvents are the Codex hook events setup installs, in the order
// they are written: the session's start, each prompt, after each tool
// call (so that a message reaches a long turn before it ends), each
// permission request (relayed to the approver machines), and, with stop,
// the agent finishing.
func codexEvents(stop bool) []codexEvent {
	evs := []codexEvent{
		{"SessionStart", "session_start", CodexHookTimeout},
		{"UserPromptSubmit", "user_prompt_submit", CodexHookTimeout},
		{"PostToolUse", "post_tool_use", CodexHookTimeout},
		{"PermissionRequest", "permission_request", CodexPermissionTimeout},
	}
	if stop {
		evs = append(evs, codexEvent{"Stop", "stop", CodexHookTimeout})
	}
	return evs
}

const (
	codexBegin      = "# BEGIN conclave (written by `conclave agent setup codex`; `--remove` takes it out)"
	codexEnd        = "# END conclave"
	codexTrustBegin = "# BEGIN conclave hook trust for "
	codexTrustEnd   = "# END conclave hook trust for "
)

// Codex plans the setup (or, with Remove, the removal) of conclave in a
// project's .codex/config.toml and of the trust of its hooks in the user's
// config.toml.
func Codex(o *Options) (*Plan, error) {
	dir, err := o.check()
	if err != nil {
		return nil, err
	}
	home := o.CodexHome
	if home == "" {
		home = filepath.Join(o.Home, ".codex")
	}
	projPath := filepath.Join(dir, ".codex", "config.toml")
	userPath := filepath.Join(home, "config.toml")
	if filepath.Clean(projPath) == filepath.Clean(userPath) {
		return nil, fmt.Errorf("the project's .codex is CODEX_HOME (%s): use a project directory", home)
	}

	old, oldExists, err := readFile(projPath)
	if err != nil {
		return nil, err
	}
	rest, hadBlock, err := cutBlock(string(old), codexBegin, codexEnd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", projPath, err)
	}
	var userTables map[string]any
	if _, err := toml.Decode(rest, &userTables); err != nil {
		return nil, fmt.Errorf("%s is not valid TOML: %w", projPath, err)
	}
	if servers, ok := userTables["mcp_servers"].(map[string]any); ok && servers["conclave"] != nil {
		if o.Remove {
			return nil, fmt.Errorf("%s has an [mcp_servers.conclave] that setup did not write; left alone", projPath)
		}
		return nil, fmt.Errorf("%s already has an [mcp_servers.conclave] of its own: remove it, then run setup again", projPath)
	}

	p := &Plan{}
	proj := FileChange{Path: projPath, Old: old, OldExists: oldExists}
	hookCmd := shellJoin(o.Hook)
	var trust []trustEntry
	switch {
	case o.Remove:
		proj.New = []byte(rest)
		proj.Exists = oldExists && (strings.TrimSpace(rest) != "" || !hadBlock)
	default:
		events := codexEvents(o.Stop)
		block := codexBlock(o.Bridge, hookCmd, events)
		proj.New = []byte(appendBlock(rest, block))
		proj.Exists = true
		var all map[string]any
		if _, err := toml.Decode(string(proj.New), &all); err != nil {
			return nil, fmt.Errorf("%s: the conclave block does not fit into this file (%v); fix the file, then run setup again", projPath, err)
		}
		groups := countGroups(userTables)
		for _, ev := range events {
			trust = append(trust, trustEntry{
				key:  fmt.Sprintf("%s:%s:%d:0", projPath, ev.key, groups[ev.name]),
				hash: codexHookHash(ev.key, hookCmd, ev.timeout),
			})
		}
	}
	p.Files = append(p.Files, proj)

	user, err := codexTrust(userPath, projPath, trust)
	if err != nil {
		return nil, err
	}
	p.Files = append(p.Files, user)
	if !o.Remove {
		p.Notes = append(p.Notes,
			"Codex reads "+projPath+" only in a trusted project: trust "+dir+" when Codex asks, or add [projects."+tomlString(dir)+"] trust_level = \"trusted\" to "+userPath+".",
			"The conclave MCP server's tools run without a Codex approval prompt (default_tools_approval_mode = \"approve\"): what they may do is decided by conclave's permission levels (conclave perm).",
			fmt.Sprintf("Codex's permission requests go to your approver machines (conclave machine approver add); with none, or when nobody answers within %d s, Codex asks in its own way.", CodexPermissionTimeout-10))
	}
	return p, nil
}

// codexBlock is the marked block setup appends to the project's config.
func codexBlock(bridge []string, hookCmd string, events []codexEvent) string {
	var sb strings.Builder
	sb.WriteString(codexBegin + "\n")
	sb.WriteString("[mcp_servers.conclave]\n")
	fmt.Fprintf(&sb, "command = %s\n", tomlString(bridge[0]))
	args := make([]string, len(bridge)-1)
	for i, a := range bridge[1:] {
		args[i] = tomlString(a)
	}
	fmt.Fprintf(&sb, "args = [%s]\n", strings.Join(args, ", "))
	sb.WriteString("required = true\n")
	sb.WriteString("default_tools_approval_mode = \"approve\"\n")
	for _, ev := range events {
		fmt.Fprintf(&sb, "\n[[hooks.%s]]\n[[hooks.%s.hooks]]\n", ev.name, ev.name)
		sb.WriteString("type = \"command\"\n")
		fmt.Fprintf(&sb, "command = %s\n", tomlString(hookCmd))
		fmt.Fprintf(&sb, "timeout = %d\n", ev.timeout)
	}
	sb.WriteString(codexEnd + "\n")
	return sb.String()
}

// countGroups counts the [[hooks.EVENT]] groups already in a config, which
// are the positions before setup's own in Codex's trust keys.
func countGroups(tables map[string]any) map[string]int {
	out := map[string]int{}
	hooks, _ := tables["hooks"].(map[string]any)
	for k, v := range hooks {
		if groups, ok := v.([]map[string]any); ok {
			out[k] = len(groups)
		}
	}
	return out
}

// codexHookHash is the trust hash Codex computes for a command hook with no
// matcher: sha256 over the canonical JSON of the normalized group.
func codexHookHash(eventKey, command string, timeout int) string {
	identity := map[string]any{
		"event_name": eventKey,
		"hooks": []any{map[string]any{
			"type":    "command",
			"command": command,
			"timeout": timeout,
			"async":   false,
		}},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(identity) // maps encode with sorted keys
	sum := sha256.Sum256(bytes.TrimRight(buf.Bytes(), "\n"))
	return "sha256:" + hex.EncodeToString(sum[:])
}

type trustEntry struct{ key, hash string }

// codexTrust plans the user config's marked trust block for projPath:
// replaced by entries, or taken out when entries is empty.
func codexTrust(userPath, projPath string, entries []trustEntry) (FileChange, error) {
	old, exists, err := readFile(userPath)
	if err != nil {
		return FileChange{}, err
	}
	f := FileChange{Path: userPath, Old: old, OldExists: exists}
	rest, hadBlock, err := cutBlock(string(old), codexTrustBegin+projPath, codexTrustEnd+projPath)
	if err != nil {
		return FileChange{}, fmt.Errorf("%s: %w", userPath, err)
	}
	var tables map[string]any
	if _, err := toml.Decode(rest, &tables); err != nil {
		return FileChange{}, fmt.Errorf("%s is not valid TOML: %w", userPath, err)
	}
	if len(entries) == 0 {
		f.New = []byte(rest)
		f.Exists = exists && (strings.TrimSpace(rest) != "" || !hadBlock)
		return f, nil
	}
	state := map[string]any{}
	if hooks, ok := tables["hooks"].(map[string]any); ok {
		state, _ = hooks["state"].(map[string]any)
	}
	var sb strings.Builder
	sb.WriteString(codexTrustBegin + projPath + "\n")
	for _, e := range entries {
		if s, ok := state[e.key].(map[string]any); ok {
			if s["trusted_hash"] == e.hash {
				continue // trusted already, in the user's own words
			}
			return FileChange{}, fmt.Errorf("%s already records a state for the hook %s: remove that [hooks.state] table, then run setup again", userPath, e.key)
		}
		fmt.Fprintf(&sb, "[hooks.state.%s]\ntrusted_hash = %s\n", tomlString(e.key), tomlString(e.hash))
	}
	sb.WriteString(codexTrustEnd + projPath + "\n")
	f.New = []byte(appendBlock(rest, sb.String()))
	f.Exists = true
	var all map[string]any
	if _, err := toml.Decode(string(f.New), &all); err != nil {
		return FileChange{}, fmt.Errorf("%s: the hook trust block does not fit into this file (%v)", userPath, err)
	}
	return f, nil
}

// cutBlock removes the lines from begin to end (inclusive) and one blank
// line before them. It reports whether the block was there; a begin
// without its end is an error, since guessing where it ends could eat the
// user's lines.
func cutBlock(s, begin, end string) (string, bool, error) {
	lines := strings.SplitAfter(s, "\n")
	from, to := -1, -1
	for i, l := range lines {
		t := strings.TrimRight(l, "\r\n")
		if t == begin && from < 0 {
			from = i
		} else if t == end && from >= 0 {
			to = i
			break
		}
	}
	if from < 0 {
		return s, false, nil
	}
	if to < 0 {
		return "", false, fmt.Errorf("the line %q has no %q after it; restore it or take the block out by hand", begin, end)
	}
	if from > 0 && strings.TrimSpace(lines[from-1]) == "" {
		from--
	}
	return strings.Join(lines[:from], "") + strings.Join(lines[to+1:], ""), true, nil
}

// appendBlock appends a marked block after one blank line, which
// cutBlock takes out with it.
func appendBlock(rest, block string) string {
	if rest == "" {
		return block
	}
	if !strings.HasSuffix(rest, "\n") {
		rest += "\n"
	}
	return rest + "\n" + block
}

// tomlString quotes s as a TOML basic string (JSON's escapes are TOML's).
func tomlString(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimRight(buf.String(), "\n")
}
