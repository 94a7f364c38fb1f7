package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/conclave/conclave/atomicfile"
	"github.com/conclave/conclave/linediff"
	"github.com/conclave/conclave/orderedjson"
	"github.com/conclave/conclave/regfile"
)

// Names setup uses in Claude Code's files.
const (
	// ServerName is the MCP server's name: its tools are mcp__conclave__*.
	ServerName = "conclave"
	// HookTool is the bridge tool the mcp_tool hooks call.
	HookTool = "inbox_hook"

	mcpFile      = ".mcp.json"
	settingsFile = ".claude/settings.local.json"
	recordFile   = ".claude/conclave-setup.json"
	// RecordFile is where setup records what it changed, relative to the
	// project.
	RecordFile = recordFile
)

// hookEvents are the events setup hooks, in the order written; Stop only
// with Options.Stop. Not SessionStart: Claude Code runs no mcp_tool hook
// at startup or resume (no MCP client yet) and shows the failure.
var hookEvents = []string{"UserPromptSubmit", "PostToolUse"}

// Options says what to set up.
type Options struct {
	// Project is the project directory. Required.
	Project string
	// Bridge is the argv that starts the bridge, e.g.
	// ["/usr/local/bin/conclave", "bridge"]; setup adds
	// "--delivery hooks". Required unless Remove.
	Bridge []string
	// Stop adds the Stop hook that keeps the agent going, a bounded
	// number of times per turn, when a message at converse or act waits.
	Stop bool
	// Remove undoes an earlier setup instead.
	Remove bool
}

// Change is one file's edit: Old and New are its contents, nil for
// absent.
type Change struct {
	Path     string // relative to the project
	Old, New []byte
}

// Diff is the change as a unified diff.
func (c *Change) Diff() string {
	from, to := "a/"+c.Path, "b/"+c.Path
	if c.Old == nil {
		from = "/dev/null"
	}
	if c.New == nil {
		to = "/dev/null"
	}
	return linediff.Unified(from, to, c.Old, c.New)
}

// Plan is what a setup or removal would change, file by file; empty when
// there is nothing to do.
type Plan struct {
	Project string
	Changes []Change
	// dropDir removes .claude after the changes if it is left empty
	// (setup created it).
	dropDir bool
}

// record is setup's memory of what it changed, kept in recordFile: the
// files as they were and as setup left them, and the user's own entry it
// edited, so that removal restores them.
type record struct {
	Files map[string]fileRecord `json:"files"`
	// ServerBefore is the user's own mcpServers.conclave entry before
	// setup edited it; null when setup added it.
	ServerBefore json.RawMessage `json:"server_before"`
	// Approved says setup added conclave to enabledMcpjsonServers.
	Approved bool `json:"approved"`
	// CreatedDir says setup created .claude.
	CreatedDir bool `json:"created_dir"`
}

type fileRecord struct {
	Before *string `json:"before"` // nil: the file did not exist
	After  string  `json:"after_sha256"`
}

// ClaudeCode plans the setup (or, with Remove, the removal) of conclave
// with hooks delivery in a Claude Code project. It reads the project's
// files and writes nothing.
func ClaudeCode(o *Options) (*Plan, error) {
	if o == nil || o.Project == "" {
		return nil, errors.New("agent setup: no project directory")
	}
	st, err := os.Stat(o.Project)
	if err != nil {
		return nil, fmt.Errorf("project %s: %w", o.Project, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("project %s is not a directory", o.Project)
	}
	files := map[string][]byte{}
	// maxSettingsFile caps each file read: Claude Code's settings are
	// small, and a path that never ends must not be read forever.
	const maxSettingsFile = 8 << 20
	for _, f := range []string{mcpFile, settingsFile, recordFile} {
		b, err := regfile.Read(filepath.Join(o.Project, f), maxSettingsFile)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("reading %s: %w", f, err)
		default:
			files[f] = b
		}
	}
	var rec *record
	if b, ok := files[recordFile]; ok {
		rec = new(record)
		if err := json.Unmarshal(b, rec); err != nil {
			return nil, fmt.Errorf("%s: %w (remove it to start over)", recordFile, err)
		}
	}
	p := &Plan{Project: o.Project}
	if o.Remove {
		return p, p.remove(files, rec)
	}
	if len(o.Bridge) == 0 {
		return nil, errors.New("agent setup: no bridge command")
	}
	return p, p.setup(o, files, rec)
}

// setup edits the files to hold the server entry, the hooks and the
// approval.
func (p *Plan) setup(o *Options, files map[string][]byte, rec *record) error {
	fresh := rec == nil
	if fresh {
		rec = &record{Files: map[string]fileRecord{}}
		if _, err := os.Stat(filepath.Join(o.Project, ".claude")); errors.Is(err, fs.ErrNotExist) {
			rec.CreatedDir = true
		}
	}
	mcpDoc, err := parseFile(files, mcpFile)
	if err != nil {
		return err
	}
	servers, err := mcpDoc.Obj("mcpServers", mcpFile)
	if err != nil {
		return err
	}
	entry := orderedjson.New()
	entry.Set("type", "stdio")
	entry.Set("command", o.Bridge[0])
	entry.Set("args", strs(withDelivery(o.Bridge[1:])))
	if old, ok := servers.Get(ServerName); ok {
		if fresh {
			rec.ServerBefore = json.RawMessage(orderedjson.Encode(old))
		}
		if oo, ok := old.(*orderedjson.Object); ok {
			// The user's own entry: keep it, only switch its delivery.
			entry = oo
			if args, ok := argList(oo); ok {
				oo.Set("args", strs(withDelivery(args)))
			} else {
				oo.Set("args", strs([]string{"--delivery", "hooks"}))
			}
		}
	}
	servers.Set(ServerName, entry)

	set, err := parseFile(files, settingsFile)
	if err != nil {
		return err
	}
	hooks, err := set.Obj("hooks", settingsFile)
	if err != nil {
		return err
	}
	events := slices.Clone(hookEvents)
	if o.Stop {
		events = append(events, "Stop")
	}
	for _, ev := range events {
		groups, _ := hooks.Get(ev)
		list, ok := groups.([]any)
		if groups != nil && !ok {
			return fmt.Errorf("%s: hooks.%s is not a list", settingsFile, ev)
		}
		if slices.ContainsFunc(list, func(g any) bool { return len(ourHooks(g)) > 0 }) {
			continue
		}
		h := orderedjson.New()
		h.Set("type", "mcp_tool")
		h.Set("server", ServerName)
		h.Set("tool", HookTool)
		in := orderedjson.New()
		in.Set("event", ev)
		h.Set("input", in)
		g := orderedjson.New()
		if ev == "PostToolUse" {
			g.Set("matcher", "*")
		}
		g.Set("hooks", []any{h})
		hooks.Set(ev, append(list, g))
	}
	approved, _ := set.Get("enabledMcpjsonServers")
	names, ok := approved.([]any)
	if approved != nil && !ok {
		return fmt.Errorf("%s: enabledMcpjsonServers is not a list", settingsFile)
	}
	if !slices.Contains(names, any(ServerName)) {
		set.Set("enabledMcpjsonServers", append(names, ServerName))
		if fresh {
			rec.Approved = true
		}
	}

	for _, f := range []struct {
		name string
		doc  *orderedjson.Object
	}{{mcpFile, mcpDoc}, {settingsFile, set}} {
		newBytes := orderedjson.Encode(f.doc)
		old, existed := files[f.name]
		if existed && equalFile(old, newBytes) {
			continue
		}
		if _, known := rec.Files[f.name]; !known {
			var before *string
			if existed {
				s := string(old)
				before = &s
			}
			rec.Files[f.name] = fileRecord{Before: before}
		}
		r := rec.Files[f.name]
		r.After = digest(newBytes)
		rec.Files[f.name] = r
		p.add(f.name, old, existed, newBytes)
	}
	if len(p.Changes) == 0 {
		return nil // set up already
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", recordFile, err)
	}
	old, existed := files[recordFile]
	p.add(recordFile, old, existed, append(b, '\n'))
	return nil
}

// remove restores what setup changed: a file setup left untouched since
// gets its old bytes back; one edited since loses only setup's entries.
func (p *Plan) remove(files map[string][]byte, rec *record) error {
	if rec == nil {
		rec = &record{Files: map[string]fileRecord{}}
	}
	for _, name := range []string{mcpFile, settingsFile} {
		cur, exists := files[name]
		r, known := rec.Files[name]
		if known && exists && digest(cur) == r.After {
			var before []byte
			if r.Before != nil {
				before = []byte(*r.Before)
			}
			p.add(name, cur, true, before)
			continue
		}
		if !exists {
			continue
		}
		doc, err := parseFile(files, name)
		if err != nil {
			return err
		}
		unchanged := orderedjson.Encode(doc)
		if name == mcpFile {
			if servers, ok := doc.At("mcpServers").(*orderedjson.Object); ok {
				if len(rec.ServerBefore) > 0 && string(rec.ServerBefore) != "null" {
					before, err := orderedjson.Parse(rec.ServerBefore)
					if err != nil {
						return fmt.Errorf("%s: %w", recordFile, err)
					}
					servers.Set(ServerName, before)
				} else if known {
					servers.Del(ServerName)
				}
			}
		} else {
			stripHooks(doc)
			if rec.Approved {
				if names, ok := doc.At("enabledMcpjsonServers").([]any); ok {
					names = slices.DeleteFunc(names, func(v any) bool { return v == ServerName })
					if len(names) == 0 {
						doc.Del("enabledMcpjsonServers")
					} else {
						doc.Set("enabledMcpjsonServers", names)
					}
				}
			}
		}
		newBytes := orderedjson.Encode(doc)
		if known && r.Before == nil && len(doc.Keys()) == 0 {
			newBytes = nil // setup created it and nothing else is in it
		}
		if newBytes == nil || !equalFile(unchanged, newBytes) {
			p.add(name, cur, true, newBytes)
		}
	}
	if old, ok := files[recordFile]; ok {
		p.add(recordFile, old, true, nil)
	}
	p.dropDir = rec.CreatedDir
	return nil
}

// stripHooks removes every hook that calls the bridge's hook tool, and
// the groups and events left empty.
func stripHooks(doc *orderedjson.Object) {
	hooks, ok := doc.At("hooks").(*orderedjson.Object)
	if !ok {
		return
	}
	for _, ev := range slices.Clone(hooks.Keys()) {
		list, ok := hooks.At(ev).([]any)
		if !ok {
			continue
		}
		var kept []any
		for _, g := range list {
			go_, ok := g.(*orderedjson.Object)
			if !ok || len(ourHooks(g)) == 0 {
				kept = append(kept, g)
				continue
			}
			hs, _ := go_.At("hooks").([]any)
			hs = slices.DeleteFunc(hs, isOurHook)
			if len(hs) > 0 {
				go_.Set("hooks", hs)
				kept = append(kept, g)
			}
		}
		if len(kept) == 0 {
			hooks.Del(ev)
		} else {
			hooks.Set(ev, kept)
		}
	}
	if len(hooks.Keys()) == 0 {
		doc.Del("hooks")
	}
}

// ourHooks returns the hooks of a matcher group that call the bridge's
// hook tool.
func ourHooks(g any) []any {
	o, ok := g.(*orderedjson.Object)
	if !ok {
		return nil
	}
	hs, _ := o.At("hooks").([]any)
	var out []any
	for _, h := range hs {
		if isOurHook(h) {
			out = append(out, h)
		}
	}
	return out
}

func isOurHook(h any) bool {
	o, ok := h.(*orderedjson.Object)
	return ok && o.At("type") == "mcp_tool" && o.At("server") == ServerName && o.At("tool") == HookTool
}

// withDelivery returns args with --delivery hooks, replacing another
// --delivery value.
func withDelivery(args []string) []string {
	out := make([]string, 0, len(args)+2)
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--delivery":
			i++
			continue
		case strings.HasPrefix(args[i], "--delivery="):
			continue
		}
		out = append(out, args[i])
	}
	return append(out, "--delivery", "hooks")
}

func argList(o *orderedjson.Object) ([]string, bool) {
	raw, ok := o.At("args").([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(raw))
	for _, a := range raw {
		s, ok := a.(string)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

func strs(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func parseFile(files map[string][]byte, name string) (*orderedjson.Object, error) {
	v, err := orderedjson.Parse(files[name])
	if err != nil {
		return nil, fmt.Errorf("%s is not valid JSON: %w", name, err)
	}
	o, ok := v.(*orderedjson.Object)
	if !ok {
		return nil, fmt.Errorf("%s does not hold a JSON object", name)
	}
	return o, nil
}

func (p *Plan) add(name string, old []byte, existed bool, new []byte) {
	if !existed {
		old = nil
	}
	p.Changes = append(p.Changes, Change{Path: name, Old: old, New: new})
}

// equalFile reports whether a file already holds content, byte for byte.
func equalFile(cur, content []byte) bool { return string(cur) == string(content) }

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Apply writes the plan: each file through a temporary file and a rename,
// a nil New removes the file (and .claude if setup left it empty).
func (p *Plan) Apply() error {
	for _, c := range p.Changes {
		path := filepath.Join(p.Project, c.Path)
		if c.New == nil {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("removing %s: %w", c.Path, err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", filepath.Dir(c.Path), err)
		}
		mode := os.FileMode(0o644)
		if st, err := os.Stat(path); err == nil {
			mode = st.Mode().Perm()
		}
		if err := atomicfile.WriteFile(path, c.New, mode); err != nil {
			return fmt.Errorf("writing %s: %w", c.Path, err)
		}
	}
	if p.dropDir {
		dir := filepath.Join(p.Project, ".claude")
		if entries, err := os.ReadDir(dir); err == nil && len(entries) == 0 {
			if err := os.Remove(dir); err != nil {
				return fmt.Errorf("removing .claude: %w", err)
			}
		}
	}
	return nil
}
