package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// modernMeta is the _meta a client of MCP 2026-07-28 puts on every request,
// as Claude Code 2.1.3xx does.
var modernMeta = map[string]any{
	"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
	"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "claude-code", "version": "2.1.337"},
	"io.modelcontextprotocol/clientCapabilities": map[string]any{"roots": map[string]any{"listChanged": true}},
}

// modernEraWarning is the bridge's stderr line for a client that stays in
// the era without channel notifications.
const modernEraWarning = "in which Claude Code does not deliver channel notifications"

type discoverResult struct {
	SupportedVersions []string `json:"supportedVersions"`
	Capabilities      struct {
		Experimental map[string]any `json:"experimental"`
	} `json:"capabilities"`
	Instructions string `json:"instructions"`
}

func (c *mcpClient) discover() discoverResult {
	c.t.Helper()
	r := c.request("server/discover", map[string]any{"_meta": modernMeta}, 10*time.Second)
	if r.Error != nil {
		c.t.Fatalf("server/discover: %+v", r.Error)
	}
	var d discoverResult
	if err := json.Unmarshal(r.Result, &d); err != nil {
		c.t.Fatalf("server/discover result %s: %v", r.Result, err)
	}
	return d
}

// TestBridgeProtocolEras: the bridge's server/discover answer offers no
// revision of the era in which Claude Code drops channel notifications, so
// a client that probes with server/discover falls back to initialize and
// gets its pushes. A client that stays modern anyway is still served, is
// told in the discover answer's instructions, and the bridge says so once
// on stderr.
func TestBridgeProtocolEras(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and bridges")
	}
	t.Parallel()
	w := newWorld(t, nil, "alice", "bob")
	bob := w.dial("bob", "bt")
	createChannel(t, bob, "ops", "public")
	joinConn(t, bob, "ops")

	// Claude Code 2.1.3xx: the discover probe, then initialize.
	c := launchBridge(t, w.dirs["alice"], "", "--as", "main")
	d := c.discover()
	if len(d.SupportedVersions) == 0 || !slices.Contains(d.SupportedVersions, "2025-11-25") {
		t.Errorf("supportedVersions %v, want the initialize revisions", d.SupportedVersions)
	}
	for _, v := range d.SupportedVersions {
		if v >= "2026-07-28" {
			t.Errorf("supportedVersions %v offers %s, an era without channel notifications", d.SupportedVersions, v)
		}
	}
	if d.Capabilities.Experimental["claude/channel"] == nil {
		t.Errorf("discover capabilities %v lack claude/channel", d.Capabilities.Experimental)
	}
	if !strings.Contains(d.Instructions, "2026-07-28") || !strings.Contains(d.Instructions, "catch_up") {
		t.Errorf("discover instructions do not say what the modern era costs: %q", d.Instructions)
	}
	c.initialize()
	var init struct {
		ProtocolVersion string `json:"protocolVersion"`
		Instructions    string `json:"instructions"`
	}
	if err := json.Unmarshal(c.initResult, &init); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(init.Instructions, "2026-07-28") || init.ProtocolVersion >= "2026-07-28" {
		t.Errorf("initialize result %s", c.initResult)
	}
	c.ok("join_channel", map[string]any{"channel": "ops"})
	post(t, bob, "ops", "pushed after the fallback")
	c.wait("the push", 10*time.Second, bodyNote("pushed after the fallback"))
	if strings.Contains(c.stderrText(), modernEraWarning) {
		t.Errorf("warned about the modern era on a legacy connection:\n%s", c.stderrText())
	}

	// A client that goes on in 2026-07-28 anyway: tools work, the bridge
	// warns once.
	m := launchBridge(t, w.dirs["alice"], "", "--as", "modern")
	m.discover()
	for i := range 2 {
		r := m.request("tools/list", map[string]any{"_meta": modernMeta}, 10*time.Second)
		if r.Error != nil || !strings.Contains(string(r.Result), `"catch_up"`) {
			t.Fatalf("modern tools/list %d: %+v %s", i, r.Error, r.Result)
		}
	}
	r := m.request("tools/call", map[string]any{"_meta": modernMeta, "name": "join_channel", "arguments": map[string]any{"channel": "ops"}}, 30*time.Second)
	if r.Error != nil || !strings.Contains(string(r.Result), "joined ops") {
		t.Fatalf("modern tools/call join_channel: %+v %s", r.Error, r.Result)
	}
	if n := strings.Count(m.stderrText(), modernEraWarning); n != 1 {
		t.Errorf("the modern-era warning appears %d times, want once; stderr:\n%s", n, m.stderrText())
	}
}
