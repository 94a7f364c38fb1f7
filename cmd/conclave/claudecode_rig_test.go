package main

// The real Claude Code, offline, through testing/claude-code-rig: a fake
// model API on loopback, Claude Code in a pty, the bridge (or any stdio
// MCP server) as a development channel. Tests that use it call
// requireClaudeCode, which skips unless CONCLAVE_CLAUDE_CODE=1 (.ci/run
// sets it: each version is a ~370 MB install, cached after the first).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// claudeCodeLatest is the newest published Claude Code the real-client
// tests run against. Move it forward as releases come
// (`npm view @anthropic-ai/claude-code version`).
const claudeCodeLatest = "2.1.337"

// claudeCodeVersions are the releases the real-client tests cover: an
// early channels release, which opens with initialize, and the newest,
// which probes with server/discover at MCP 2026-07-28 first.
var claudeCodeVersions = []string{"2.1.197", claudeCodeLatest}

// rigDir is the repository's copy of the rig.
const rigDir = "../../testing/claude-code-rig"

// requireClaudeCode skips the test unless CONCLAVE_CLAUDE_CODE is set, and
// fails it if the tools the rig needs are missing.
func requireClaudeCode(t *testing.T) {
	t.Helper()
	if os.Getenv("CONCLAVE_CLAUDE_CODE") == "" {
		t.Skip("runs the real Claude Code (a ~370 MB install per version): set CONCLAVE_CLAUDE_CODE=1, as .ci/run does")
	}
	for _, tool := range []string{"node", "npm", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the Claude Code rig needs %s: %v", tool, err)
		}
	}
}

var (
	registryOnce sync.Once
	registryErr  error // non-nil: the npm registry cannot be reached at all
)

// claudeCodeBin installs Claude Code version with the rig's install.sh
// (cached under ~/.cache/conclave-claude-code) and returns its executable.
// Only when the install fails and the npm registry cannot be reached at
// all does it skip, printing one "SKIPPED: no npm registry" line; any
// other failure fails the test.
func claudeCodeBin(t *testing.T, version string) string {
	t.Helper()
	requireClaudeCode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(rigDir, "install.sh"), version)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return strings.TrimSpace(stdout.String())
	}
	registryOnce.Do(func() {
		ping, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ping, "npm", "ping").CombinedOutput(); err != nil {
			registryErr = fmt.Errorf("npm ping: %v: %s", err, bytes.TrimSpace(out))
			fmt.Printf("\n*** SKIPPED: no npm registry (%v) ***\n\n", registryErr)
		}
	})
	if registryErr != nil {
		t.Skipf("no npm registry: %v", registryErr)
	}
	t.Fatalf("install.sh %s failed although the npm registry answers: %v\n%s", version, err, stderr.String())
	return ""
}

// fakeStep is one tool call of the fake model's script, made in order as
// soon as any user message of the conversation (tool results included)
// contains On (default "<channel"), even right after the previous step's
// result: give each later step its own marker.
type fakeStep struct {
	Name  string `json:"name"`
	Input any    `json:"input"`
	On    string `json:"on,omitempty"`
	In    string `json:"in,omitempty"` // "all": also system text, where hook context lands
}

// rigOptions are drive.py's options.
type rigOptions struct {
	Claude    string   // the executable, from claudeCodeBin
	ServerCmd []string // argv of the stdio MCP server, e.g. binary, --config-dir, DIR, bridge
	Name      string   // MCP server name (default conclave)
	Trigger   string   // shell command run once Claude Code registered the channel handler
	TriggerOn string   // the debug-log text that fires Trigger instead (drive.py --trigger-on)
	Script    []fakeStep
	Allow     []string // pre-approved tools (--allowedTools)
	Mode      string   // --permission-mode, when set
	StopFile  string   // stop once this file exists (the trigger writes it when done)
	StopShown []string // with StopFile: and once the terminal has shown these (whitespace ignored)
	StopWhen  []string // stop once the model's requests contain all of these (default: a tool_result)
	Project   string   // run Claude Code in this prepared directory
	Prompt    string   // type this prompt so that a turn happens
	NoFlags   bool     // do not turn channels on
	Seconds   int      // the longest the run may take (default 120)
}

// rigRun is what one run left behind (all files are in Dir).
type rigRun struct {
	t      *testing.T
	Dir    string
	Output string // drive.py's own output, with its summary
}

// runClaudeCode runs the real Claude Code once through drive.py and
// returns what it left behind. The run ends when StopWhen is met or after
// Seconds; the caller asserts on the files.
func runClaudeCode(t *testing.T, o rigOptions) *rigRun {
	t.Helper()
	if o.Seconds == 0 {
		o.Seconds = 120
	}
	dir := t.TempDir()
	server, err := json.Marshal(o.ServerCmd)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{filepath.Join(rigDir, "drive.py"), "--claude", o.Claude, "--run-dir", dir,
		"--seconds", fmt.Sprint(o.Seconds), "--server-cmd", string(server)}
	if o.Name != "" {
		args = append(args, "--name", o.Name)
	}
	if o.Trigger != "" {
		args = append(args, "--trigger", o.Trigger)
	}
	if o.TriggerOn != "" {
		args = append(args, "--trigger-on", o.TriggerOn)
	}
	if len(o.Script) > 0 {
		s, err := json.Marshal(o.Script)
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, "--fake-script", string(s))
	}
	if o.StopFile != "" {
		args = append(args, "--stop-file", o.StopFile)
		for _, s := range o.StopShown {
			args = append(args, "--stop-screen", s)
		}
	}
	if o.Mode != "" {
		args = append(args, "--permission-mode", o.Mode)
	}
	for _, a := range o.Allow {
		args = append(args, "--allow-tool", a)
	}
	for _, w := range o.StopWhen {
		args = append(args, "--stop-when", w)
	}
	if o.Project != "" {
		args = append(args, "--project", o.Project)
	}
	if o.Prompt != "" {
		args = append(args, "--prompt", o.Prompt)
	}
	if o.NoFlags {
		args = append(args, "--no-flags")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(o.Seconds+60)*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "python3", args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONCLAVE_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	r := &rigRun{t: t, Dir: dir, Output: string(out)}
	if err != nil {
		t.Fatalf("drive.py: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("rig run %s (Claude Code %s):\n%s", dir, o.Claude, r.Output)
		}
	})
	return r
}

func (r *rigRun) file(name string) string {
	b, err := os.ReadFile(filepath.Join(r.Dir, name))
	if err != nil && !os.IsNotExist(err) {
		r.t.Fatal(err)
	}
	return string(b)
}

// Debug is Claude Code's debug log.
func (r *rigRun) Debug() string { return r.file("debug.log") }

// Screen is the terminal, ANSI codes stripped.
func (r *rigRun) Screen() string { return r.file("screen.log") }

// tapLine is one line of tap.jsonl: an MCP message between Claude Code
// (c2s) and the server (s2c), or a line of the server's stderr.
type tapLine struct {
	Dir string          `json:"dir"`
	Msg json.RawMessage `json:"msg"`
}

// Tap is every MCP line, both ways, in order.
func (r *rigRun) Tap() []tapLine {
	var out []tapLine
	sc := bufio.NewScanner(strings.NewReader(r.file("tap.jsonl")))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var l tapLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		}
	}
	return out
}

// apiBlock is one content block of a message Claude Code sent the model.
type apiBlock struct {
	Type    string          `json:"type"`
	Text    string          `json:"text"`
	Content json.RawMessage `json:"content"` // a tool_result's
}

// ModelInput is every content block of every message in every request
// Claude Code made to the model, in order (later requests repeat the
// conversation).
func (r *rigRun) ModelInput() []apiBlock {
	var out []apiBlock
	sc := bufio.NewScanner(strings.NewReader(r.file("fake-api.jsonl")))
	sc.Buffer(make([]byte, 1<<20), 256<<20)
	for sc.Scan() {
		var req struct {
			Body struct {
				Messages []struct {
					Role    string          `json:"role"`
					Content json.RawMessage `json:"content"`
				} `json:"messages"`
			} `json:"body"`
		}
		if json.Unmarshal(sc.Bytes(), &req) != nil {
			continue
		}
		for _, m := range req.Body.Messages {
			var s string
			if json.Unmarshal(m.Content, &s) == nil {
				out = append(out, apiBlock{Type: "text", Text: s})
				continue
			}
			var blocks []apiBlock
			if json.Unmarshal(m.Content, &blocks) == nil {
				out = append(out, blocks...)
			}
		}
	}
	return out
}

// channelElement matches one <channel …>…</channel> as Claude Code wraps
// a notification: the content cannot hold a raw "</channel", so the first
// "\n</channel>" after the opening tag ends the element.
var channelElement = regexp.MustCompile(`(?s)<channel source="[^"]*"[^>]*>\n.*?\n</channel>`)

// ChannelElements are the distinct <channel> elements the model saw, in
// the order it first saw them.
func (r *rigRun) ChannelElements() []string {
	var out []string
	seen := map[string]bool{}
	for _, b := range r.ModelInput() {
		for _, el := range channelElement.FindAllString(b.Text, -1) {
			if !seen[el] {
				seen[el] = true
				out = append(out, el)
			}
		}
	}
	return out
}

// ToolResults are the distinct tool_result contents the model saw, as JSON.
func (r *rigRun) ToolResults() []string {
	var out []string
	seen := map[string]bool{}
	for _, b := range r.ModelInput() {
		if b.Type == "tool_result" && !seen[string(b.Content)] {
			seen[string(b.Content)] = true
			out = append(out, string(b.Content))
		}
	}
	return out
}

// assertChannelsDelivered checks that Claude Code registered the channel
// handler and did not end up in an era that skips its notifications.
func (r *rigRun) assertChannelsDelivered() {
	r.t.Helper()
	debug := r.Debug()
	if i := strings.Index(debug, "Channel notifications skipped"); i >= 0 {
		end := strings.IndexByte(debug[i:], '\n')
		if end < 0 {
			end = len(debug) - i
		}
		r.t.Errorf("Claude Code skipped the channel: %s", debug[i:i+end])
	}
	if !strings.Contains(debug, "Channel notifications registered") {
		r.t.Errorf("Claude Code never registered the channel handler")
	}
	if strings.Contains(debug, `"protocolEra":`) && !strings.Contains(debug, `"protocolEra":"legacy"`) {
		r.t.Errorf("Claude Code negotiated an era other than legacy")
	}
	// Whether a late discover answer lands in the modern era depends on
	// timing; an answer that offers it at all is the bug.
	discover := map[string]bool{}
	for _, l := range r.Tap() {
		var m struct {
			ID     any             `json:"id"`
			Method string          `json:"method"`
			Result json.RawMessage `json:"result"`
		}
		if json.Unmarshal(l.Msg, &m) != nil || m.ID == nil {
			continue
		}
		id := fmt.Sprint(m.ID)
		switch {
		case l.Dir == "c2s" && m.Method == "server/discover":
			discover[id] = true
		case l.Dir == "s2c" && discover[id] && strings.Contains(string(m.Result), `"2026-07-28"`):
			r.t.Errorf("the server/discover answer offers 2026-07-28, the era without channel notifications: %s", m.Result)
		}
	}
}
