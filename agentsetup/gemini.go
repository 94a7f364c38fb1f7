package agentsetup

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/conclave/conclave/orderedjson"
	"github.com/conclave/conclave/regfile"
)

// GeminiHookTimeout is the time limit, in milliseconds, that setup gives
// each Gemini CLI hook.
const GeminiHookTimeout = 10000

// geminiEvents are the Gemini CLI hook events setup installs: the
// session's start, each prompt, and after each tool call; geminiStop is
// the agent finishing, installed with Options.Stop.
var geminiEvents = []string{"SessionStart", "BeforeAgent", "AfterTool"}

const geminiStop = "AfterAgent"

// geminiHookName marks setup's hooks in settings.json.
const geminiHookName = "conclave"

// Gemini plans the setup (or, with Remove, the removal) of conclave in a
// project's .gemini/settings.json.
func Gemini(o *Options) (*Plan, error) {
	dir, err := o.check()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, ".gemini", "settings.json")
	old, exists, err := readFile(path)
	if err != nil {
		return nil, err
	}
	root, err := orderedjson.ParseObject(old)
	if err != nil {
		return nil, fmt.Errorf("%s is not a JSON object (%v); fix it, then run setup again", path, err)
	}
	servers, err := root.Obj("mcpServers", path)
	if err != nil {
		return nil, err
	}
	hooks, err := root.Obj("hooks", path)
	if err != nil {
		return nil, err
	}
	if v, ok := servers.Get("conclave"); ok && !isOurServer(v) {
		return nil, fmt.Errorf("%s already has an mcpServers.conclave that does not run `conclave bridge`; left alone", path)
	}

	// Take out what an earlier setup wrote, then write it afresh (setup)
	// or leave it out (removal).
	_, found := servers.Get("conclave")
	servers.Del("conclave")
	for _, ev := range append(slices.Clone(geminiEvents), geminiStop) {
		v, ok := hooks.Get(ev)
		if !ok {
			continue
		}
		groups, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("%s: hooks.%s is not a list", path, ev)
		}
		n := len(groups)
		groups = slices.DeleteFunc(slices.Clone(groups), isOurGroup)
		found = found || len(groups) < n
		if len(groups) == 0 {
			hooks.Del(ev)
		} else {
			hooks.Set(ev, groups)
		}
	}
	if !o.Remove {
		s := orderedjson.New()
		s.Set("command", o.Bridge[0])
		args := make([]any, len(o.Bridge)-1)
		for i, a := range o.Bridge[1:] {
			args[i] = a
		}
		s.Set("args", args)
		s.Set("trust", true)
		servers.Set("conclave", s)
		cmd := shellJoin(o.Hook)
		events := slices.Clone(geminiEvents)
		if o.Stop {
			events = append(events, geminiStop)
		}
		for _, ev := range events {
			h := orderedjson.New()
			h.Set("type", "command")
			h.Set("name", geminiHookName)
			h.Set("command", cmd)
			h.Set("timeout", GeminiHookTimeout)
			g := orderedjson.New()
			g.Set("hooks", []any{h})
			var groups []any
			if v, ok := hooks.Get(ev); ok {
				groups = v.([]any)
			}
			hooks.Set(ev, append(groups, g))
		}
	}
	for _, k := range []string{"mcpServers", "hooks"} {
		if v, _ := root.Get(k); v != nil && len(v.(*orderedjson.Object).Keys()) == 0 {
			root.Del(k)
		}
	}

	f := FileChange{Path: path, Old: old, OldExists: exists, Exists: true}
	switch {
	case len(root.Keys()) > 0:
		f.New = orderedjson.Encode(root)
	case o.Remove:
		f.Exists = false
	default:
		f.New = []byte("{}\n")
	}
	if o.Remove && !found {
		f.New, f.Exists = old, exists // nothing of setup's is there
	}
	if exists && f.Exists && sameJSON(old, f.New) {
		// Nothing but the formatting would change: keep the user's bytes.
		f.New = old
	}
	p := &Plan{Files: []FileChange{f}}
	if !o.Remove {
		p.Notes = append(p.Notes,
			"Gemini CLI reads "+path+" and starts stdio MCP servers only in a trusted folder: trust "+dir+" when Gemini CLI asks, or run it with --skip-trust.",
			"The conclave MCP server is trusted (\"trust\": true): its tools run without a Gemini CLI confirmation; what they may do is decided by conclave's permission levels (conclave perm).")
		if !geminiTrusted(o.Home, dir) {
			p.Notes = append(p.Notes, dir+" is not in "+filepath.Join(o.Home, ".gemini", "trustedFolders.json")+" yet.")
		}
	}
	return p, nil
}

// isOurServer reports whether an mcpServers entry runs `conclave bridge`.
func isOurServer(v any) bool {
	o, ok := v.(*orderedjson.Object)
	if !ok {
		return false
	}
	args, _ := o.Get("args")
	list, _ := args.([]any)
	return slices.Contains(list, any("bridge"))
}

// isOurGroup reports whether a hook group holds only setup's hooks.
func isOurGroup(v any) bool {
	g, ok := v.(*orderedjson.Object)
	if !ok {
		return false
	}
	hv, _ := g.Get("hooks")
	hooks, _ := hv.([]any)
	if len(hooks) == 0 {
		return false
	}
	for _, h := range hooks {
		ho, ok := h.(*orderedjson.Object)
		if !ok {
			return false
		}
		if name, _ := ho.Get("name"); name != geminiHookName {
			return false
		}
	}
	return true
}

// sameJSON reports whether two documents hold the same JSON value.
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return string(ja) == string(jb)
}

// geminiTrusted reports whether dir is listed as trusted in the user's
// ~/.gemini/trustedFolders.json.
func geminiTrusted(home, dir string) bool {
	data, err := regfile.Read(filepath.Join(home, ".gemini", "trustedFolders.json"), maxSettingsFile)
	if err != nil {
		return false
	}
	var m map[string]string
	if json.Unmarshal(data, &m) != nil {
		return false
	}
	return m[dir] == "TRUST_FOLDER"
}
