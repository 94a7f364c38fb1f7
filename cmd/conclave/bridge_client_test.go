package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conclave/conclave/control"
	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

// mcpClient is a minimal MCP client over a `conclave bridge` process's
// stdin and stdout: newline-delimited JSON-RPC, as Claude Code speaks it.
type mcpClient struct {
	t    *testing.T
	cmd  *exec.Cmd
	in   io.WriteCloser
	done chan struct{} // closed when stdout ends

	writeMu sync.Mutex

	mu      sync.Mutex
	nextID  int
	waiting map[int]chan rpcMsg
	notes   []*rpcNote
	bad     []string      // stdout lines that are not JSON-RPC
	changed chan struct{} // closed and replaced when a note arrives
	stderr  strings.Builder

	initResult json.RawMessage
}

type rpcMsg struct {
	ID     *int            `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// rpcNote is one notification the bridge sent.
type rpcNote struct {
	Method   string
	Content  string
	Meta     map[string]any
	MetaKeys []string // meta's keys in the order they arrived
	Params   map[string]any
	At       time.Time
	used     bool
}

// startBridge runs `conclave --config-dir DIR bridge ARGS…` in cwd (or a
// temp dir) and initializes an MCP session with it.
func startBridge(t *testing.T, dir, cwd string, args ...string) *mcpClient {
	t.Helper()
	c := launchBridge(t, dir, cwd, args...)
	c.initialize()
	return c
}

func launchBridge(t *testing.T, dir, cwd string, args ...string) *mcpClient {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"--config-dir", dir, "bridge"}, args...)...)
	if cwd == "" {
		cwd = t.TempDir()
	}
	cmd.Dir = cwd
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONCLAVE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	c := &mcpClient{t: t, cmd: cmd, waiting: make(map[int]chan rpcMsg), changed: make(chan struct{}), done: make(chan struct{})}
	var err error
	if c.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &lockedWriter{mu: &c.mu, w: &c.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go c.read(out)
	t.Cleanup(func() {
		c.in.Close()
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			t.Error("the bridge did not exit within 5 s of stdin closing")
			cmd.Process.Kill()
		}
		if err := cmd.Wait(); err != nil && !t.Failed() {
			t.Errorf("bridge exit: %v", err)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.bad) > 0 {
			t.Errorf("bridge wrote non-JSON-RPC lines to stdout: %q", c.bad)
		}
		if strings.Contains(c.stderr.String(), "DATA RACE") || strings.Contains(c.stderr.String(), "panic:") {
			t.Errorf("bridge stderr:\n%s", c.stderr.String())
		}
		if t.Failed() {
			t.Logf("bridge stderr:\n%s", c.stderr.String())
		}
	})
	return c
}

func (c *mcpClient) read(out io.Reader) {
	defer close(c.done)
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		now := time.Now()
		var m rpcMsg
		if err := json.Unmarshal(line, &m); err != nil || (m.ID == nil && m.Method == "") {
			c.mu.Lock()
			c.bad = append(c.bad, string(line))
			c.mu.Unlock()
			continue
		}
		if m.ID != nil && m.Method == "" {
			c.mu.Lock()
			ch := c.waiting[*m.ID]
			delete(c.waiting, *m.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		if m.ID != nil {
			// A request from the server (roots/list, …): answer empty.
			c.send(map[string]any{"jsonrpc": "2.0", "id": *m.ID, "result": map[string]any{}})
			continue
		}
		n := &rpcNote{Method: m.Method, At: now}
		if len(m.Params) > 0 {
			json.Unmarshal(m.Params, &n.Params)
			var p struct {
				Content string          `json:"content"`
				Meta    json.RawMessage `json:"meta"`
			}
			json.Unmarshal(m.Params, &p)
			n.Content = p.Content
			if len(p.Meta) > 0 {
				json.Unmarshal(p.Meta, &n.Meta)
				dec := json.NewDecoder(strings.NewReader(string(p.Meta)))
				dec.Token()
				for dec.More() {
					k, _ := dec.Token()
					n.MetaKeys = append(n.MetaKeys, fmt.Sprint(k))
					dec.Token()
				}
			}
		}
		c.mu.Lock()
		c.notes = append(c.notes, n)
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	}
}

func (c *mcpClient) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.in.Write(append(b, '\n'))
}

// request sends a JSON-RPC request and waits for its response.
func (c *mcpClient) request(method string, params any, timeout time.Duration) rpcMsg {
	c.t.Helper()
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	ch := make(chan rpcMsg, 1)
	c.waiting[id] = ch
	c.mu.Unlock()
	c.send(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	select {
	case m := <-ch:
		return m
	case <-c.done:
		c.t.Fatalf("bridge exited while %s was pending; stderr:\n%s", method, c.stderrText())
	case <-time.After(timeout):
		c.t.Fatalf("no response to %s within %v", method, timeout)
	}
	return rpcMsg{}
}

func (c *mcpClient) stderrText() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr.String()
}

func (c *mcpClient) notify(method string, params any) {
	m := map[string]any{"jsonrpc": "2.0", "method": method}
	if params != nil {
		m["params"] = params
	}
	c.send(m)
}

func (c *mcpClient) initialize() {
	c.t.Helper()
	r := c.request("initialize", map[string]any{
		"protocolVersion": "2025-06-18",
		"capabilities":    map[string]any{"roots": map[string]any{}, "elicitation": map[string]any{}},
		"clientInfo":      map[string]any{"name": "claude-code", "version": "2.1.197"},
	}, 10*time.Second)
	if r.Error != nil {
		c.t.Fatalf("initialize: %+v", r.Error)
	}
	c.initResult = r.Result
	c.notify("notifications/initialized", nil)
}

// call calls a tool and returns its text and isError.
func (c *mcpClient) call(name string, args map[string]any) (string, bool) {
	c.t.Helper()
	return c.callWithin(name, args, 30*time.Second)
}

func (c *mcpClient) callWithin(name string, args map[string]any, timeout time.Duration) (string, bool) {
	c.t.Helper()
	if args == nil {
		args = map[string]any{}
	}
	r := c.request("tools/call", map[string]any{"name": name, "arguments": args}, timeout)
	if r.Error != nil {
		c.t.Fatalf("tools/call %s: JSON-RPC error %d %s (refusals must be isError results)", name, r.Error.Code, r.Error.Message)
	}
	var res struct {
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
		IsError bool `json:"isError"`
	}
	if err := json.Unmarshal(r.Result, &res); err != nil {
		c.t.Fatalf("tools/call %s: %v in %s", name, err, r.Result)
	}
	var texts []string
	for _, ct := range res.Content {
		texts = append(texts, ct.Text)
	}
	return strings.Join(texts, "\n"), res.IsError
}

// ok calls a tool that must succeed and returns its text.
func (c *mcpClient) ok(name string, args map[string]any) string {
	c.t.Helper()
	text, isErr := c.call(name, args)
	if isErr {
		c.t.Fatalf("%s %v: error %q", name, args, text)
	}
	return text
}

// refused calls a tool that must fail with an isError result containing
// want.
func (c *mcpClient) refused(name string, args map[string]any, want string) string {
	c.t.Helper()
	text, isErr := c.call(name, args)
	if !isErr || !strings.Contains(text, want) {
		c.t.Fatalf("%s %v = %q (isError %v), want an isError result containing %q", name, args, text, isErr, want)
	}
	return text
}

func (c *mcpClient) tools() []string {
	c.t.Helper()
	r := c.request("tools/list", map[string]any{}, 10*time.Second)
	var res struct {
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(r.Result, &res); err != nil {
		c.t.Fatal(err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	return names
}

// wait returns the first unconsumed notification that matches, waiting up
// to timeout.
func (c *mcpClient) wait(what string, timeout time.Duration, match func(*rpcNote) bool) *rpcNote {
	c.t.Helper()
	n := c.poll(timeout, match)
	if n == nil {
		c.t.Fatalf("no %s within %v; notifications so far:\n%s\nstderr:\n%s", what, timeout, c.dump(), c.stderrText())
	}
	return n
}

func (c *mcpClient) poll(timeout time.Duration, match func(*rpcNote) bool) *rpcNote {
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		for _, n := range c.notes {
			if !n.used && match(n) {
				n.used = true
				c.mu.Unlock()
				return n
			}
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-deadline:
			return nil
		case <-c.done:
			return nil
		}
	}
}

// none fails if a matching notification arrives within d.
func (c *mcpClient) none(what string, d time.Duration, match func(*rpcNote) bool) {
	c.t.Helper()
	if n := c.poll(d, match); n != nil {
		c.t.Fatalf("unexpected %s: %s %q %v", what, n.Method, n.Content, n.Meta)
	}
}

func (c *mcpClient) dump() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var sb strings.Builder
	for _, n := range c.notes {
		fmt.Fprintf(&sb, "  %s used=%v meta=%v content=%.200q\n", n.Method, n.used, n.Meta, n.Content)
	}
	return sb.String()
}

// Notification matchers.
func isMethod(m string) func(*rpcNote) bool {
	return func(n *rpcNote) bool { return n.Method == m }
}

func channelNote(kind string, contains string) func(*rpcNote) bool {
	return func(n *rpcNote) bool {
		return n.Method == "notifications/claude/channel" && n.Meta["kind"] == kind && strings.Contains(n.Content, contains)
	}
}

// world is a server and the config dirs of some users registered on it.
type world struct {
	t    *testing.T
	url  string
	dirs map[string]string // user → config dir
}

// newWorld starts a server with args (--ephemeral unless a data dir is
// given) and registers users (machine = user + "-m").
func newWorld(t *testing.T, serveArgs []string, users ...string) *world {
	t.Helper()
	addr := freeAddr(t)
	args := append([]string{"--rate-limit", "0"}, serveArgs...)
	if !strings.Contains(strings.Join(serveArgs, " "), "--data-dir") {
		args = append(args, "--ephemeral")
	}
	srv := start(t, []string{"CONCLAVE_LOG_FORMAT=json"}, true, append([]string{"serve", "--bind", addr}, args...)...)
	srv.expect(`"msg":"conclave server listening"`)
	go func() {
		for range srv.lines {
		}
	}()
	t.Cleanup(func() { srv.cmd.Process.Kill() })
	w := &world{t: t, url: "ws://" + addr, dirs: map[string]string{}}
	for _, u := range users {
		w.register(u)
	}
	return w
}

func (w *world) register(user string) string {
	w.t.Helper()
	dir, ok := w.dirs[user]
	if !ok {
		dir = filepath.Join(w.t.TempDir(), user)
		w.dirs[user] = dir
	}
	r := cli(w.t, []string{"CONCLAVE_CONFIG_DIR=" + dir}, "register", user, "--server", w.url, "--machine", user+"-m")
	if r.code != 0 {
		w.t.Fatalf("register %s: %s", user, r.stderr)
	}
	return dir
}

// dial connects as user with handle, straight through control.
func (w *world) dial(user, handle string) *control.Conn {
	w.t.Helper()
	return dialDir(w.t, w.dirs[user], w.url, handle)
}

func dialDir(t *testing.T, dir, url, handle string) *control.Conn {
	t.Helper()
	key, _, err := identity.LoadKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := control.Dial(context.Background(), &control.Options{URL: url, Key: key, Session: handle, Keepalive: 20 * time.Second})
	if err != nil {
		t.Fatalf("dial %s as %s: %v", url, handle, err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() { // deliveries to this connection are not looked at
		for range conn.Events() {
		}
	}()
	return conn
}

func mustRequest(t *testing.T, conn *control.Conn, f *protocol.Frame) *protocol.Frame {
	t.Helper()
	r, err := conn.Request(context.Background(), f)
	if err != nil {
		t.Fatalf("%s: %v", f.Type, err)
	}
	return r
}

func post(t *testing.T, conn *control.Conn, channel, body string) {
	t.Helper()
	mustRequest(t, conn, &protocol.Frame{Type: protocol.TChannelMsg, Channel: channel, Body: &body})
}
