package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/control"
	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

// The real Codex CLI and Gemini CLI, against the fake model APIs beside
// them in testing/ (.ci/agent-clis.sh installs both CLIs from npm and sets
// these variables; without them the tests say so and skip).
const (
	codexBinEnv  = "CONCLAVE_CODEX_BIN"
	geminiBinEnv = "CONCLAVE_GEMINI_BIN"
)

// agentRun is one real CLI session configured only by `agent setup`.
type agentRun struct {
	t       *testing.T
	w       *world
	root    string // everything of this run: the fake API's files, the project, HOME
	project string
	home    string
	gate    string // the fake model's first tool waits until this file exists
	bob     *control.Conn
	bodies  chan string // the bodies bob sees in #ops
	fakeLog string
	flags   []string // more flags for agent setup
}

func newAgentRun(t *testing.T, binEnv string) *agentRun {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a server, the real CLI and a fake model API")
	}
	bin := os.Getenv(binEnv)
	if bin == "" {
		t.Skipf("%s is not set (.ci/agent-clis.sh installs the CLI from npm and sets it)", binEnv)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("the fake model API needs node: %v", err)
	}
	w := newWorld(t, nil, "alice", "bob")
	root, err := os.MkdirTemp("", "cg") // short: unix socket paths are bounded
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	r := &agentRun{t: t, w: w, root: root, project: filepath.Join(root, "project"), home: filepath.Join(root, "home"),
		gate: filepath.Join(root, "go"), fakeLog: filepath.Join(root, "fake-api.jsonl"), bodies: make(chan string, 64)}
	for _, d := range []string{r.project, r.home} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	admin := w.dial("bob", "admin")
	createChannel(t, admin, "ops", "public")
	// Alice's agent may answer in #ops.
	ok(t, []string{"CONCLAVE_CONFIG_DIR=" + w.dirs["alice"]}, "perm", "set", "converse")
	r.bob = r.listen("bob", "ops")
	return r
}

// listen joins channel as user and sends every body it delivers to
// r.bodies.
func (r *agentRun) listen(user, channel string) *control.Conn {
	r.t.Helper()
	return r.listenTo(user, channel, r.bodies)
}

// listenTo joins channel as user (session "watch") and sends every body
// it delivers there to bodies.
func (r *agentRun) listenTo(user, channel string, bodies chan<- string) *control.Conn {
	r.t.Helper()
	key, _, err := identity.LoadKey(r.w.dirs[user])
	if err != nil {
		r.t.Fatal(err)
	}
	conn, err := control.Dial(context.Background(), &control.Options{URL: r.w.url, Key: key, Session: "watch", Keepalive: 20 * time.Second})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { conn.Close() })
	go func() {
		for f := range conn.Events() {
			if f.Channel == channel && f.Body != nil {
				bodies <- *f.Body
			}
		}
	}()
	joinConn(r.t, conn, channel)
	return conn
}

// setup runs `conclave agent setup RUNTIME` for the project, as alice.
func (r *agentRun) setup(runtime string, env ...string) string {
	r.t.Helper()
	env = append(env, "HOME="+r.home)
	args := append([]string{"--config-dir", r.w.dirs["alice"], "agent", "setup", runtime, "--project", r.project, "--join", "ops"}, r.flags...)
	return ok(r.t, env, args...)
}

// fake starts the fake model API (script under testing/) and returns its
// base URL.
func (r *agentRun) fake(script string, env ...string) string {
	r.t.Helper()
	portFile := filepath.Join(r.root, "port")
	cmd := exec.Command("node", filepath.Join("..", "..", "testing", script))
	cmd.Env = append(os.Environ(), append(env, "PORT_FILE="+portFile, "FAKE_LOG="+r.fakeLog)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if data, err := os.ReadFile(portFile); err == nil && len(data) > 0 {
			return "http://127.0.0.1:" + string(data)
		}
		if time.Now().After(deadline) {
			r.t.Fatal("the fake model API did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitCmd is a shell command that waits (at most a minute) until the gate
// file exists: the fake model's first tool call, so that a message arrives
// while the turn runs and reaches the model at the next turn boundary.
// The message may reach the bridge just after that boundary; the fake
// model then calls the command again (firstToolMax), and the boundary
// after it delivers.
func (r *agentRun) waitCmd() string {
	return fmt.Sprintf("i=0; while [ ! -e %s ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; sleep 0.2; echo waited", r.gate)
}

// awaitPong waits for the agent's answer "pong" in #ops, then for the
// CLI (done) to end well.
func (r *agentRun) awaitPong(done <-chan error, out *strings.Builder) {
	r.t.Helper()
	timeout := time.After(150 * time.Second)
	for {
		select {
		case b := <-r.bodies:
			if b == "pong" {
				select {
				case err := <-done:
					if err != nil {
						r.t.Errorf("the CLI ended with %v; output:\n%s", err, out.String())
					}
				case <-time.After(150 * time.Second):
					r.t.Errorf("the CLI did not end; output:\n%s", out.String())
				}
				return
			}
		case err := <-done:
			r.t.Fatalf("the CLI ended (%v) with no answer in #ops; output:\n%s", err, out.String())
		case <-timeout:
			r.t.Fatalf("no answer in #ops; output:\n%s", out.String())
		}
	}
}

// delivered returns the text of the first model request that carried
// the message, as the fake API logged it.
func (r *agentRun) delivered(pattern string) string {
	r.t.Helper()
	f, err := os.Open(r.fakeLog)
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	re := regexp.MustCompile(pattern)
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var rec struct {
			Body json.RawMessage `json:"body"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		var s strings.Builder
		collectStrings(rec.Body, &s)
		if m := re.FindString(s.String()); m != "" {
			return m
		}
	}
	r.t.Fatalf("no request in %s matches %s", r.fakeLog, pattern)
	return ""
}

// collectStrings appends every string inside a JSON document, one a line.
func collectStrings(raw json.RawMessage, sb *strings.Builder) {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return
	}
	var walk func(any)
	walk = func(v any) {
		switch t := v.(type) {
		case string:
			sb.WriteString(t)
			sb.WriteByte('\n')
		case []any:
			for _, x := range t {
				walk(x)
			}
		case map[string]any:
			for _, x := range t {
				walk(x)
			}
		}
	}
	walk(v)
}

// codex is `codex exec` with args in the project, its output collected.
func (r *agentRun) codex(codexHome string, args ...string) (*exec.Cmd, *strings.Builder) {
	cmd := exec.Command(os.Getenv(codexBinEnv), append([]string{"exec", "--skip-git-repo-check"}, args...)...)
	cmd.Dir = r.project
	cmd.Env = append(os.Environ(), "HOME="+r.home, "CODEX_HOME="+codexHome, "FAKE_API_KEY=fake")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	return cmd, &out
}

// gemini is a headless `gemini -p` turn in the project against the fake
// Gemini API at base, its output collected.
func (r *agentRun) gemini(base string) (*exec.Cmd, *strings.Builder) {
	cmd := exec.Command(os.Getenv(geminiBinEnv), "-p", "work on the task", "--approval-mode", "yolo")
	cmd.Dir = r.project
	cmd.Env = append(os.Environ(), "HOME="+r.home, "GEMINI_API_KEY=fake", "GOOGLE_GEMINI_BASE_URL="+base)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	return cmd, &out
}

// codexConfig writes Codex's own configuration into codexHome: the fake
// model API at base as its model provider, and the project trusted.
func (r *agentRun) codexConfig(codexHome, base string) {
	r.t.Helper()
	if err := os.MkdirAll(codexHome, 0o700); err != nil {
		r.t.Fatal(err)
	}
	writeFile(r.t, filepath.Join(codexHome, "config.toml"), fmt.Sprintf(`model = "fake-model"
model_provider = "fake"

[model_providers.fake]
name = "fake"
base_url = "%s/v1"
env_key = "FAKE_API_KEY"
wire_api = "responses"

[projects.%q]
trust_level = "trusted"
`, base, r.project))
}

// converse starts cmd, waits until alice's bridge is in #ops, posts to
// it, opens the gate, and waits for the agent's answer in #ops.
//
// With finishing, the message reaches the bridge while the model is
// still giving its answer (the fake model holds it until the gate opens,
// and answers without a tool call): the agent is finishing when it is
// delivered, so only the Stop hook can hand it over. The gate then opens
// only once the model was asked (a turn's request carries the tools, so
// the prompt's hooks have run) and alice's own watcher got the message
// from the same delivery that reaches her bridge.
func (r *agentRun) converse(cmd *exec.Cmd, out *strings.Builder, finishing bool) {
	r.t.Helper()
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	r.t.Cleanup(func() { cmd.Process.Kill() })
	// Gemini CLI takes several seconds to start, more on a loaded machine.
	deadline := time.Now().Add(150 * time.Second)
	for {
		log, _ := os.ReadFile(r.fakeLog)
		asked := !finishing || strings.Contains(string(log), `"tools":`) || strings.Contains(string(log), `"functionDeclarations"`)
		if asked && strings.Contains(ok(r.t, []string{"CONCLAVE_CONFIG_DIR=" + r.w.dirs["bob"]}, "who", "ops"), "alice/") {
			break
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("the bridge never joined #ops (or the model was never asked); output:\n%s", out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	mine := make(chan string, 64)
	if finishing {
		r.listenTo("alice", "ops", mine)
	}
	post(r.t, r.bob, "ops", "hello agent, are you there?")
	for finishing {
		if b := <-mine; b == "hello agent, are you there?" {
			break
		}
	}
	if err := os.WriteFile(r.gate, nil, 0o600); err != nil {
		r.t.Fatal(err)
	}
	r.awaitPong(done, out)
}

// TestCodexCLIStop: with `agent setup codex --stop-hook`, a message that
// reaches the bridge while the model gives its final answer is handed
// over by Codex's Stop hook, which keeps the agent going (the message is
// the next prompt, as the fake API's log shows) to answer into #ops.
func TestCodexCLIStop(t *testing.T) {
	r := newAgentRun(t, codexBinEnv)
	r.flags = []string{"--stop-hook"}
	codexHome := filepath.Join(r.home, ".codex")
	base := r.fake("codex-rig/fake-openai.mjs", "FAKE_HOLD_FILE="+r.gate)
	r.codexConfig(codexHome, base)
	if out := r.setup("codex", "CODEX_HOME="+codexHome); !strings.Contains(out, "[[hooks.Stop]]") {
		t.Errorf("setup output:\n%s", out)
	}
	cmd, stdout := r.codex(codexHome, "-s", "danger-full-access", "work on the task")
	r.converse(cmd, stdout, true)
	// Codex wraps the reason in <hook_prompt> and escapes < and > in it.
	r.delivered(`<hook_prompt [^>]*>conclave: 1 new message\(s\) arrived while you were finishing[^\n]*\n` +
		`&lt;channel source="conclave" server="[^"]+" channel="ops" from="bob/bob-m/watch" kind="channel"&gt;[^&<]*hello agent, are you there\?\n&lt;/channel&gt;</hook_prompt>`)
}

// TestGeminiCLIStop: the same with Gemini CLI's AfterAgent hook (`agent
// setup gemini --stop-hook`); the continuation prompt is the reason as
// given, the <channel> element unescaped.
func TestGeminiCLIStop(t *testing.T) {
	r := newAgentRun(t, geminiBinEnv)
	r.flags = []string{"--stop-hook"}
	base := r.fake("gemini-rig/fake-gemini.mjs", "FAKE_HOLD_FILE="+r.gate)
	r.geminiConfig()
	if out := r.setup("gemini"); !strings.Contains(out, `"AfterAgent"`) {
		t.Errorf("setup output:\n%s", out)
	}
	cmd, stdout := r.gemini(base)
	r.converse(cmd, stdout, true)
	r.delivered(`conclave: 1 new message\(s\) arrived while you were finishing[^\n]*\n` +
		`<channel source="conclave" server="[^"]+" channel="ops" from="bob/bob-m/watch" kind="channel">[^<]*hello agent, are you there\?\n</channel>`)
}

// geminiConfig writes Gemini CLI's own configuration: API-key auth and
// the project trusted.
func (r *agentRun) geminiConfig() {
	r.t.Helper()
	gdir := filepath.Join(r.home, ".gemini")
	if err := os.MkdirAll(gdir, 0o700); err != nil {
		r.t.Fatal(err)
	}
	writeFile(r.t, filepath.Join(gdir, "settings.json"), `{"security": {"auth": {"selectedType": "gemini-api-key"}}}`)
	writeFile(r.t, filepath.Join(gdir, "trustedFolders.json"), fmt.Sprintf(`{%s: "TRUST_FOLDER"}`, jsonString(r.project)))
}

// TestCodexCLI: the real Codex CLI, configured only through `agent setup
// codex` (the test seeds only Codex's own model provider and project
// trust), runs a turn against the fake Responses API; a message posted in
// #ops while the turn's first tool runs reaches the model at the next
// turn boundary (PostToolUse, through `conclave hook codex`), delimited as
// a <channel> element, and the model's send_channel call posts into #ops.
func TestCodexCLI(t *testing.T) {
	r := newAgentRun(t, codexBinEnv)
	codexHome := filepath.Join(r.home, ".codex")
	base := r.fake("codex-rig/fake-openai.mjs", "FAKE_FIRST_TOOL=exec_command", firstToolMax,
		`FAKE_FIRST_TOOL_INPUT={"cmd":`+jsonString(r.waitCmd())+`,"yield_time_ms":60000}`)
	r.codexConfig(codexHome, base)
	out := r.setup("codex", "CODEX_HOME="+codexHome)
	if !strings.Contains(out, "hook codex") || !strings.Contains(out, "[mcp_servers.conclave]") {
		t.Errorf("setup output:\n%s", out)
	}

	cmd, stdout := r.codex(codexHome, "-s", "danger-full-access", "work on the task")
	r.converse(cmd, stdout, false)

	seen := r.delivered(`<channel source="conclave" server="[^"]+" channel="ops" from="bob/bob-m/watch" kind="channel">[^<]*hello agent, are you there\?\n</channel>`)
	if !strings.Contains(seen, "Permission level converse") {
		t.Errorf("the model saw %q", seen)
	}
	if !strings.Contains(stdout.String(), "hook: PostToolUse") {
		t.Errorf("no PostToolUse hook ran; output:\n%s", stdout.String())
	}
}

// TestCodexCLIPermission: the real Codex CLI, configured only through
// `agent setup codex`, with approvals on (`codex exec --approve-for-me`:
// approval policy on-request), is asked by the fake model to run a
// command outside the sandbox. Its PermissionRequest hook relays the
// request through the bridge to alice's approver machine (her phone):
// an answer from her laptop, where the agent runs, is refused; the
// phone's approve lets the command run, its deny stops it and Codex
// tells the model who denied it.
func TestCodexCLIPermission(t *testing.T) {
	r := newAgentRun(t, codexBinEnv)
	laptop := []string{"CONCLAVE_CONFIG_DIR=" + r.w.dirs["alice"]}
	phoneDir := filepath.Join(r.root, "phone")
	phone := []string{"CONCLAVE_CONFIG_DIR=" + phoneDir}
	ok(t, laptop, "machine", "add", "phone", "--pubkey", strings.TrimSpace(ok(t, phone, "key")))
	ok(t, phone, "register", "--existing", "--server", r.w.url)
	ok(t, laptop, "machine", "approver", "add", "phone")
	watcher := phoneConn(t, phoneDir, r.w.url)

	made := filepath.Join(r.project, "made")
	codexHome := filepath.Join(r.home, ".codex")
	base := r.fake("codex-rig/fake-openai.mjs", "FAKE_FIRST_TOOL=exec_command", "FAKE_FIRST_TOOL_MAX=1",
		`FAKE_FIRST_TOOL_INPUT={"cmd":`+jsonString("touch "+made)+`,"sandbox_permissions":"require_escalated","justification":"may I touch it?"}`)
	r.codexConfig(codexHome, base)
	if out := r.setup("codex", "CODEX_HOME="+codexHome); !strings.Contains(out, "[[hooks.PermissionRequest]]") {
		t.Errorf("setup output:\n%s", out)
	}

	for _, behavior := range []string{"allow", "deny"} {
		cmd, stdout := r.codex(codexHome, "--approve-for-me", "run the task")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() { cmd.Process.Kill() })

		var req *protocol.Frame
		timeout := time.After(150 * time.Second)
		for req == nil {
			select {
			case f, open := <-watcher.Events():
				if !open {
					t.Fatalf("the phone's connection ended: %v", watcher.Err())
				}
				if f.Type == protocol.TPermissionRequest {
					req = f
				}
			case err := <-done:
				t.Fatalf("Codex ended (%v) without a permission request reaching the phone; output:\n%s", err, stdout.String())
			case <-timeout:
				t.Fatalf("no permission request reached the phone; output:\n%s", stdout.String())
			}
		}
		if req.ToolName != "Bash" || !strings.Contains(req.Description, "Run the shell command: touch "+made) ||
			!strings.HasPrefix(req.From, "alice/alice-m/") {
			t.Errorf("the phone got %+v", req)
		}
		fails(t, 1, "not an approver machine", laptop, "approve", req.RequestID)
		ok(t, phone, map[string]string{"allow": "approve", "deny": "deny"}[behavior], req.RequestID)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: Codex ended with %v; output:\n%s", behavior, err, stdout.String())
			}
		case <-time.After(150 * time.Second):
			t.Fatalf("%s: Codex did not end; output:\n%s", behavior, stdout.String())
		}
		_, err := os.Stat(made)
		switch behavior {
		case "allow":
			if err != nil {
				t.Errorf("approved, the command did not run (%v); output:\n%s", err, stdout.String())
			}
			os.Remove(made)
		case "deny":
			if err == nil {
				t.Errorf("denied, the command ran; output:\n%s", stdout.String())
			}
			if !strings.Contains(stdout.String(), "denied by alice/phone/cli-") {
				t.Errorf("Codex did not say who denied it; output:\n%s", stdout.String())
			}
		}
	}
}

// TestGeminiCLI: the real Gemini CLI, configured only through `agent
// setup gemini` (the test seeds only Gemini CLI's API-key auth and folder
// trust), runs a headless turn against the fake Gemini API; a message
// posted in #ops reaches the model at the next turn boundary (BeforeAgent
// or AfterTool, through `conclave hook gemini`), delimited as a <channel>
// element (which Gemini CLI escapes into its <hook_context>), and the
// model's send_channel call posts into #ops.
func TestGeminiCLI(t *testing.T) {
	r := newAgentRun(t, geminiBinEnv)
	base := r.fake("gemini-rig/fake-gemini.mjs", "FAKE_FIRST_TOOL=run_shell_command", firstToolMax,
		`FAKE_FIRST_TOOL_INPUT={"command":`+jsonString(r.waitCmd())+`}`)
	r.geminiConfig()
	out := r.setup("gemini")
	if !strings.Contains(out, "hook gemini") || !strings.Contains(out, `"mcpServers"`) {
		t.Errorf("setup output:\n%s", out)
	}

	cmd, stdout := r.gemini(base)
	r.converse(cmd, stdout, false)

	seen := r.delivered(`&lt;channel source="conclave" server="[^"]+" channel="ops" from="bob/bob-m/watch" kind="channel"&gt;[^&]*hello agent, are you there\?\n&lt;/channel&gt;`)
	if !strings.Contains(seen, "Permission level converse") {
		t.Errorf("the model saw %q", seen)
	}
}

// firstToolMax bounds how often the fake model runs the waiting command.
const firstToolMax = "FAKE_FIRST_TOOL_MAX=20"

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
