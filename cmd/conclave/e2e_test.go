package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is a long-running conclave process (serve, tail) whose stdout lines
// are collected as they come.
type proc struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan string // stdout, line by line; closed at EOF

	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{}
	err    error // from Wait, once done is closed
}

// start runs the binary in the background. stdout is read line by line;
// if stderrLines is true stderr is read that way too (serve logs) and
// stdout discarded.
func start(t *testing.T, env []string, stderrLines bool, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONCLAVE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	p := &proc{t: t, cmd: cmd, lines: make(chan string, 100), done: make(chan struct{})}
	var r io.ReadCloser
	var err error
	if stderrLines {
		r, err = cmd.StderrPipe()
	} else {
		r, err = cmd.StdoutPipe()
		cmd.Stderr = &lockedWriter{mu: &p.mu, w: &p.stderr}
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (p *proc) stderrText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// expect waits for a line matching re, skipping others.
func (p *proc) expect(re string) string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	timeout := time.After(15 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("%v ended before printing a line matching %q; stderr: %s", p.cmd.Args, re, p.stderrText())
			}
			if rx.MatchString(l) {
				return l
			}
		case <-timeout:
			p.t.Fatalf("%v printed no line matching %q within 15s; stderr: %s", p.cmd.Args, re, p.stderrText())
		}
	}
}

// stop sends sig and returns the exit code.
func (p *proc) stop(sig os.Signal) int {
	p.t.Helper()
	p.cmd.Process.Signal(sig)
	return p.wait()
}

// wait waits for the process to end and returns its exit code.
func (p *proc) wait() int {
	p.t.Helper()
	go func() {
		for range p.lines { // drain so that the process can finish writing
		}
	}()
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.t.Fatalf("%v did not exit within 15s", p.cmd.Args)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		p.t.Fatalf("%v: %v", p.cmd.Args, p.err)
	}
	return 0
}

// startServer runs `conclave serve --bind 127.0.0.1:0 --ephemeral` with
// any extra flags and returns its URL and server id, from its JSON log.
func startServer(t *testing.T, extra ...string) (url, serverID string, srv *proc) {
	t.Helper()
	args := append([]string{"serve", "--bind", "127.0.0.1:0", "--ephemeral"}, extra...)
	srv = start(t, []string{"CONCLAVE_LOG_FORMAT=json"}, true, args...)
	line := srv.expect(`"msg":"conclave server listening"`)
	var rec struct {
		URL      string `json:"url"`
		ServerID string `json:"server_id"`
	}
	if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.URL == "" || rec.ServerID == "" {
		t.Fatalf("listening line %q: %+v, %v", line, rec, err)
	}
	go func() {
		for range srv.lines { // keep draining the server's log
		}
	}()
	t.Cleanup(func() {
		srv.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-srv.done:
		case <-time.After(10 * time.Second):
			t.Error("server did not stop within 10s of SIGTERM")
		}
	})
	return rec.URL, rec.ServerID, srv
}

// TestQuickStart runs the quick start against the real server:
// two machines (config dirs A and B), alice and bob.
func TestQuickStart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	url, serverID, _ := startServer(t)
	tmp := t.TempDir()
	a := []string{"CONCLAVE_CONFIG_DIR=" + filepath.Join(tmp, "A")}
	b := []string{"CONCLAVE_CONFIG_DIR=" + filepath.Join(tmp, "B")}
	laptop := []string{"CONCLAVE_CONFIG_DIR=" + filepath.Join(tmp, "L")}

	ok(t, a, "key")
	ok(t, b, "key")
	out := ok(t, a, "register", "alice", "--server", url, "--machine", "wa")
	if !regexp.MustCompile(`^✓ registered alice/wa/cli-\d+\n$`).MatchString(out) {
		t.Errorf("register printed %q", out)
	}
	out = ok(t, append(b, "CONCLAVE_SERVER="+url), "register", "bob", "--machine", "wb", "--json")
	var reg struct{ Path, Server, ServerID string }
	if err := json.Unmarshal([]byte(out), &reg); err != nil || !strings.HasPrefix(reg.Path, "bob/wb/cli-") || reg.Server != url {
		t.Errorf("register --json = %q (%v)", out, err)
	}
	cfg, _ := os.ReadFile(filepath.Join(tmp, "A", "config.toml"))
	if !strings.Contains(string(cfg), `server_id = "`+serverID+`"`) {
		t.Errorf("config.toml does not pin server id %s:\n%s", serverID, cfg)
	}
	fails(t, 1, "registration rejected", append(b, "CONCLAVE_SERVER="+url), "register", "alice", "--machine", "other")

	if out := ok(t, a, "channel", "create", "ops"); !strings.HasPrefix(out, "✓") || !strings.Contains(out, "ops") {
		t.Errorf("channel create printed %q", out)
	}

	// bob tails ops; alice posts and whispers.
	tail := start(t, b, false, "tail", "--channel", "ops", "--as", "bt")
	tail.expectStderr(`^tailing #ops as bob/wb/bt — Ctrl-C to stop$`)
	if out := ok(t, a, "send", "--channel", "ops", "hello"); out != "✓ sent to ops\n" {
		t.Errorf("send printed %q", out)
	}
	// stdout holds only messages (the banner is on stderr): its first line
	// is the first message, as `tail … | head -1` sees it.
	if l := tail.next(); !regexp.MustCompile(`^\[ops\] alice/wa/cli-\d+: hello$`).MatchString(l) {
		t.Errorf("tail's first stdout line = %q, want the first message", l)
	}
	if out := ok(t, a, "whisper", "bob/wb/bt", "psst"); !strings.HasPrefix(out, "✓") {
		t.Errorf("whisper printed %q", out)
	}
	tail.expect(`^\[whisper\] alice/wa/cli-\d+: psst$`)

	// who, as text and JSON.
	if out := ok(t, a, "who"); !regexp.MustCompile(`^\[server\] .*bob/wb/bt`).MatchString(out) || !strings.Contains(out, "alice/wa/cli-") {
		t.Errorf("who printed %q", out)
	}
	if out := ok(t, a, "who", "ops", "--json"); strings.TrimSpace(out) != `{"channel":"ops","sessions":["bob/wb/bt"]}` {
		t.Errorf("who ops --json = %s", out)
	}
	var who struct {
		Channel  *string  `json:"channel"`
		Sessions []string `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(ok(t, a, "--json", "who")), &who); err != nil || who.Channel != nil || len(who.Sessions) != 2 {
		t.Errorf("who --json = %+v, %v", who, err)
	}
	if out := ok(t, a, "--json", "channel", "list"); strings.TrimSpace(out) != `[{"name":"ops","visibility":"public","member":true}]` {
		t.Errorf("channel list --json = %s", out)
	}
	if out := ok(t, a, "channel", "list"); out != "ops\tpublic\t(member)\n" {
		t.Errorf("channel list = %q", out)
	}

	// A tail in JSON mode gets one object per line.
	jtail := start(t, a, false, "tail", "--channel", "ops", "--json")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(jtail.stderrText(), "tailing #ops") {
		if time.Now().After(deadline) {
			t.Fatalf("json tail printed no banner on stderr: %q", jtail.stderrText())
		}
		time.Sleep(20 * time.Millisecond)
	}
	ok(t, b, "send", "--channel", "ops", "hi there")
	var line struct {
		Kind, Channel, From, Body string
		TsMs                      int64 `json:"ts_ms"`
		Seq                       uint64
	}
	if err := json.Unmarshal([]byte(jtail.expect(`^\{`)), &line); err != nil || line.Kind != "channel" || line.Channel != "ops" ||
		!strings.HasPrefix(line.From, "bob/wb/cli-") || line.Body != "hi there" || line.TsMs == 0 || line.Seq == 0 {
		t.Errorf("tail --json line = %+v, %v", line, err)
	}
	if code := jtail.stop(os.Interrupt); code != 0 {
		t.Errorf("tail --json exit %d after Ctrl-C; stderr: %s", code, jtail.stderrText())
	}

	// tail --since prints the backlog, oldest first, then streams.
	since := start(t, a, false, "tail", "--channel", "ops", "--since", "1h")
	since.expectStderr(`^tailing #ops as alice/wa/cli-\d+ — Ctrl-C to stop$`)
	if l := since.expect(`^\[ops\]`); !strings.HasSuffix(l, ": hello") {
		t.Errorf("first backlog line %q, want the hello", l)
	}
	if l := since.expect(`^\[ops\]`); !strings.HasSuffix(l, ": hi there") {
		t.Errorf("second backlog line %q, want hi there", l)
	}
	ok(t, b, "send", "--channel", "ops", "live")
	if l := since.expect(`^\[ops\]`); !strings.HasSuffix(l, ": live") {
		t.Errorf("line after the backlog %q, want live", l)
	}
	if code := since.stop(os.Interrupt); code != 0 {
		t.Errorf("tail --since exit %d after Ctrl-C; stderr: %s", code, since.stderrText())
	}

	// Machines: enroll the laptop's key under alice, list, remove.
	lapKey := strings.TrimSpace(ok(t, laptop, "key"))
	if out := ok(t, a, "machine", "add", "laptop", "--pubkey", lapKey); !strings.Contains(out, "laptop") {
		t.Errorf("machine add printed %q", out)
	}
	list := ok(t, a, "machine", "list")
	if !regexp.MustCompile(`(?m)^laptop\tSHA256:\S+\t\S+$`).MatchString(list) || !regexp.MustCompile(`(?m)^wa\tSHA256:`).MatchString(list) {
		t.Errorf("machine list = %q", list)
	}
	ok(t, a, "machine", "remove", "laptop")
	if list := ok(t, a, "machine", "list"); strings.Contains(list, "laptop") {
		t.Errorf("machine list after remove = %q", list)
	}

	// Local state: perm, status, server list.
	ok(t, a, "perm", "set", "converse", "--channel", "ops")
	if out := ok(t, a, "perm", "show"); out != "default: notify\n"+url+" ops -> converse\n" {
		t.Errorf("perm show = %q", out)
	}
	status := ok(t, a, "status")
	if !regexp.MustCompile(`^`+regexp.QuoteMeta(url)+`\talice/wa\treachable \(\d+ session\(s\) online\)\n\ndefault: notify\n`).MatchString(status) ||
		!strings.Contains(status, "ops -> converse") {
		t.Errorf("status = %q", status)
	}
	if out := ok(t, a, "server", "list"); out != url+"\talice/wa\n" {
		t.Errorf("server list = %q", out)
	}

	// A second process asking for bob's tail's handle is refused, naming
	// the holder; the first tail goes on.
	r2 := fails(t, 1, `conflict: session handle "bt" is in use by another process of this machine: bob/wb/bt (conclave-cli/`,
		b, "tail", "--channel", "ops", "--as", "bt")
	if strings.Contains(r2.stdout+r2.stderr, "tailing") {
		t.Errorf("the refused tail printed a banner: %q %q", r2.stdout, r2.stderr)
	}
	ok(t, a, "send", "--channel", "ops", "still here")
	tail.expect(`^\[ops\] alice/wa/cli-\d+: still here$`)
	if code := tail.stop(os.Interrupt); code != 0 || tail.stderrText() != "tailing #ops as bob/wb/bt — Ctrl-C to stop\n" {
		t.Errorf("tail exit %d after Ctrl-C, stderr %q; want 0 and only the banner", code, tail.stderrText())
	}

	// A server presenting another id than the pinned one is refused.
	pinned := strings.Replace(string(cfg), serverID, "some-other-id", 1)
	if err := os.WriteFile(filepath.Join(tmp, "A", "config.toml"), []byte(pinned), 0o600); err != nil {
		t.Fatal(err)
	}
	r := fails(t, 1, "conclave server remove "+url, a, "who")
	if !strings.Contains(r.stderr, serverID) || !strings.Contains(r.stderr, "some-other-id") {
		t.Errorf("pin mismatch error %q does not name both ids", r.stderr)
	}
	ok(t, a, "server", "remove", url)
	// register NAME again with the key enrolled under NAME records the
	// registration again (as register --existing does).
	if r := cli(t, a, "register", "alice", "--server", url, "--machine", "wa"); r.code != 0 ||
		!regexp.MustCompile(`^✓ registered alice/wa/cli-\d+\n$`).MatchString(r.stdout) || !strings.Contains(r.stderr, "already enrolled as alice/wa") {
		t.Errorf("register after server remove: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	if out := ok(t, a, "server", "list"); out != url+"\talice/wa\n" {
		t.Errorf("server list after registering again = %q", out)
	}
}

// TestTailWaitsOutServerShutdown: a server shutting down may be
// restarting, so a tail warns on stderr and keeps trying to reconnect
// instead of failing; Ctrl-C still ends it with status 0.
func TestTailWaitsOutServerShutdown(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a server")
	}
	url, _, srv := startServer(t)
	a := []string{"CONCLAVE_CONFIG_DIR=" + t.TempDir()}
	ok(t, a, "register", "alice", "--server", url, "--machine", "wa")
	ok(t, a, "channel", "create", "ops", "--visibility", "unlisted")
	tail := start(t, a, false, "tail", "--channel", "ops")
	tail.expectStderr(`^tailing #ops`)
	srv.cmd.Process.Signal(syscall.SIGTERM)
	tail.waitStderr("reconnecting")
	if code := tail.stop(os.Interrupt); code != 0 {
		t.Errorf("tail exit %d after Ctrl-C, want 0; stderr %q", code, tail.stderrText())
	}
	e := tail.stderrText()
	banner, e, _ := strings.Cut(e, "\n")
	if !strings.HasPrefix(banner, "tailing #ops") || !strings.HasPrefix(e, "⚠ connection to "+url+" lost: ") || !strings.Contains(e, "shutting down") ||
		strings.Count(e, "\n") != 1 {
		t.Errorf("tail stderr %q, want one warning naming the server and the reason", e)
	}
}

// expectStderr waits until a line of the process's stderr matches re.
func (p *proc) expectStderr(re string) string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(15 * time.Second)
	for {
		for _, l := range strings.Split(p.stderrText(), "\n") {
			if rx.MatchString(l) {
				return l
			}
		}
		select {
		case <-p.done:
			p.t.Fatalf("%v exited without a stderr line matching %q; stderr: %q", p.cmd.Args, re, p.stderrText())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%v printed no stderr line matching %q within 15s; stderr: %q", p.cmd.Args, re, p.stderrText())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitStderr waits until the process's stderr contains s.
func (p *proc) waitStderr(s string) {
	p.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(p.stderrText(), s) {
		select {
		case <-p.done:
			if !strings.Contains(p.stderrText(), s) {
				p.t.Fatalf("%v exited without printing %q to stderr; stderr: %q", p.cmd.Args, s, p.stderrText())
			}
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%v printed no %q to stderr within 15s; stderr: %q", p.cmd.Args, s, p.stderrText())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exitsWith waits for the process to end by itself and checks that it
// exited with code and that the last line of its stderr contains want.
func (p *proc) exitsWith(code int, want string) {
	p.t.Helper()
	if got := p.wait(); got != code {
		p.t.Fatalf("%v: exit %d, want %d; stderr %q", p.cmd.Args, got, code, p.stderrText())
	}
	lines := strings.Split(strings.TrimSuffix(p.stderrText(), "\n"), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "error: ") || !strings.Contains(last, want) {
		p.t.Fatalf("%v: last stderr line %q, want `error: …%s…`", p.cmd.Args, last, want)
	}
}

// next returns the next stdout line, failing after 15 s or at EOF.
func (p *proc) next() string {
	p.t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			p.t.Fatalf("%v ended; stderr: %s", p.cmd.Args, p.stderrText())
		}
		return l
	case <-time.After(15 * time.Second):
		p.t.Fatalf("%v printed no line within 15s; stderr: %s", p.cmd.Args, p.stderrText())
	}
	return ""
}

// interrupt sends SIGINT and returns the lines printed after those
// already read, and the exit code.
func (p *proc) interrupt() (rest []string, code int) {
	p.t.Helper()
	p.cmd.Process.Signal(os.Interrupt)
	timeout := time.After(15 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				<-p.done
				var ee *exec.ExitError
				if errors.As(p.err, &ee) {
					return rest, ee.ExitCode()
				}
				return rest, 0
			}
			rest = append(rest, l)
		case <-timeout:
			p.t.Fatalf("%v did not exit within 15s of SIGINT", p.cmd.Args)
		}
	}
}
