package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/conclave/conclave/control"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

var crashCycles = flag.Int("crash.cycles", 3, "kill -9 cycles TestCrashCampaign runs")

// raceBuilt reports whether the test binary was built with -race.
func raceBuilt() bool {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				return true
			}
		}
	}
	return false
}

// crashRun runs the binary like cli, without touching t (it is called from
// worker goroutines), and returns stdout and the exit code (-1 if it could
// not run).
func crashRun(args ...string) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONCLAVE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return stdout.String(), ee.ExitCode()
	case err != nil:
		return "", -1
	}
	return stdout.String(), 0
}

// crashServer is one `conclave serve` of the campaign.
type crashServer struct {
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	log  []string // JSON log lines
}

func (s *crashServer) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.log, "\n")
}

// crashServe starts `conclave serve` and waits until it listens; a server
// that does not start fails the test with its log.
func crashServe(t testing.TB, addr, dir string, extra ...string) *crashServer {
	t.Helper()
	args := append([]string{"serve", "--bind", addr, "--data-dir", dir}, extra...)
	cmd := exec.Command(binary, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONCLAVE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "CONCLAVE_LOG_FORMAT=json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &crashServer{cmd: cmd, done: make(chan struct{})}
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			s.mu.Lock()
			s.log = append(s.log, sc.Text())
			s.mu.Unlock()
			if strings.Contains(sc.Text(), `"msg":"conclave server listening"`) {
				once.Do(func() { close(listening) })
			}
		}
		cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			cmd.Process.Kill()
			<-s.done
		}
	})
	select {
	case <-listening:
	case <-s.done:
		t.Fatalf("conclave serve on %s did not start: %v\n%s", dir, cmd.ProcessState, s.logText())
	case <-time.After(20 * time.Second):
		t.Fatalf("conclave serve on %s did not listen within 20s\n%s", dir, s.logText())
	}
	return s
}

func (s *crashServer) kill9() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// recovered returns the server's "state recovered" log line.
func (s *crashServer) recovered() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.log {
		if strings.Contains(l, `"msg":"state recovered"`) {
			return l
		}
	}
	return ""
}

// ledger is what clients saw acknowledged (exit 0). Every worker holds
// pause shared while it runs one command; the checker takes it
// exclusively, so it sees a ledger and a server that agree.
type ledger struct {
	pause sync.RWMutex

	mu       sync.Mutex
	users    map[string]string // acknowledged registrations: name -> config dir
	pending  map[string]bool   // users some worker is using right now
	channels map[string]bool
	machines map[string]bool
	acl      map[string]string // ACL worker's users in "priv": "in", "out", or "?" (unacknowledged last change)
	redeemed map[string]bool   // invite worker's users whose join --token was acknowledged
	invites  map[string]bool   // acknowledged invites never used
	posts    map[uint64]string // acknowledged posts: seq -> body
	counts   map[string]int    // acknowledged operations by kind
	tried    map[string]int    // attempted operations by kind
}

func (l *ledger) count(kind string, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tried[kind]++
	if ok {
		l.counts[kind]++
	}
}

// pickUser returns an acknowledged user whose index has the given parity,
// not in use by another worker, and marks it in use.
func (l *ledger) pickUser(parity int, skip func(string) bool) (string, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var cands []string
	for u := range l.users {
		var n int
		fmt.Sscanf(u, "u%d", &n)
		if n%2 == parity && !l.pending[u] && !skip(u) {
			cands = append(cands, u)
		}
	}
	if len(cands) == 0 {
		return "", ""
	}
	u := cands[rand.IntN(len(cands))]
	l.pending[u] = true
	return u, l.users[u]
}

func (l *ledger) release(u string) {
	l.mu.Lock()
	delete(l.pending, u)
	l.mu.Unlock()
}

// TestCrashCampaign runs the real `conclave serve` on a data dir, hammers it
// with concurrent registrations, channel creations, machine enrollments,
// ACL changes, invite creations and redemptions and posts, and kill -9s it
// at random moments, -crash.cycles times. After every kill the data dir must
// verify and the server must start again; after every restart every change
// and every post a client saw acknowledged must be there.
func TestCrashCampaign(t *testing.T) {
	if testing.Short() || raceBuilt() {
		t.Skip("crash campaign: skipped under -short and -race")
	}
	addr, data := freeAddr(t), t.TempDir()
	url := "ws://" + addr
	serveFlags := []string{"--admin-rate", "0", "--rate-limit", "0", "--snapshot-every", "40", "--admin", "owner"}
	srv := crashServe(t, addr, data, serveFlags...)
	hasAudit := strings.Contains(ok(t, nil, "--help"), "audit verify")
	if !hasAudit {
		t.Log("note: this binary has no `audit verify` verb yet; the data dir is verified with eventlog.Reader only")
	}

	tmp := t.TempDir()
	owner := filepath.Join(tmp, "owner")
	ok(t, nil, "--config-dir", owner, "register", "owner", "--server", url, "--machine", "desk")
	ok(t, nil, "--config-dir", owner, "channel", "create", "pub")
	ok(t, nil, "--config-dir", owner, "channel", "create", "priv", "--visibility", "private")
	as := func(args ...string) []string { return append([]string{"--config-dir", owner}, args...) }

	led := &ledger{users: map[string]string{}, pending: map[string]bool{}, channels: map[string]bool{"pub": true, "priv": true},
		machines: map[string]bool{"desk": true}, acl: map[string]string{}, redeemed: map[string]bool{}, invites: map[string]bool{},
		posts: map[uint64]string{}, counts: map[string]int{}, tried: map[string]int{}}
	var serial struct {
		sync.Mutex
		n int
	}
	next := func() int {
		serial.Lock()
		defer serial.Unlock()
		serial.n++
		return serial.n
	}

	workers := map[string]func(){
		"register": func() {
			n := next()
			dir := filepath.Join(tmp, fmt.Sprintf("u%d", n))
			_, code := crashRun("--config-dir", dir, "register", fmt.Sprintf("u%d", n), "--server", url, "--machine", "m")
			led.count("register", code == 0)
			if code == 0 {
				led.mu.Lock()
				led.users[fmt.Sprintf("u%d", n)] = dir
				led.mu.Unlock()
			}
		},
		"channel create": func() {
			name := fmt.Sprintf("c%d", next())
			args := as("channel", "create", name)
			if rand.IntN(2) == 0 {
				args = append(args, "--visibility", "private")
			}
			_, code := crashRun(args...)
			led.count("channel create", code == 0)
			if code == 0 {
				led.mu.Lock()
				led.channels[name] = true
				led.mu.Unlock()
			}
		},
		"machine add": func() {
			name := fmt.Sprintf("m%d", next())
			keyDir := filepath.Join(tmp, "keys", name)
			pub, code := crashRun("--config-dir", keyDir, "key")
			if code != 0 {
				return
			}
			_, code = crashRun(as("machine", "add", name, "--pubkey", strings.TrimSpace(pub))...)
			led.count("machine add", code == 0)
			if code == 0 {
				led.mu.Lock()
				led.machines[name] = true
				led.mu.Unlock()
			}
		},
		"acl change": func() {
			u, _ := led.pickUser(0, func(string) bool { return false })
			if u == "" {
				time.Sleep(20 * time.Millisecond)
				return
			}
			defer led.release(u)
			led.mu.Lock()
			verb, want := "add", "in"
			if led.acl[u] == "in" {
				verb, want = "remove", "out"
			}
			led.mu.Unlock()
			_, code := crashRun(as("acl", verb, "--channel", "priv", u)...)
			led.count("acl "+verb, code == 0)
			led.mu.Lock()
			if code == 0 {
				led.acl[u] = want
			} else {
				led.acl[u] = "?"
			}
			led.mu.Unlock()
		},
		"invite": func() {
			out, code := crashRun(as("--json", "invite", "create", "--channel", "priv", "--uses", "1")...)
			led.count("invite create", code == 0)
			if code != 0 {
				return
			}
			var inv struct{ Token string }
			if json.Unmarshal([]byte(out), &inv) != nil || inv.Token == "" {
				return
			}
			led.mu.Lock()
			led.invites[inv.Token] = true
			led.mu.Unlock()
			if rand.IntN(4) == 0 {
				return // leave some invites unused
			}
			u, dir := led.pickUser(1, func(u string) bool { return led.redeemed[u] })
			if u == "" {
				return
			}
			defer led.release(u)
			led.mu.Lock()
			delete(led.invites, inv.Token) // used or not, its fate is now the redemption's
			led.mu.Unlock()
			_, code = crashRun("--config-dir", dir, "join", "priv", "--token", inv.Token)
			led.count("join --token", code == 0)
			if code == 0 {
				led.mu.Lock()
				led.redeemed[u] = true
				led.mu.Unlock()
			}
		},
		"send": func() {
			body := fmt.Sprintf("post-%d-%d", next(), rand.Int64())
			out, code := crashRun(as("--json", "send", "--channel", "pub", body)...)
			led.count("send", code == 0)
			if code != 0 {
				return
			}
			var r struct{ Seq uint64 }
			if err := json.Unmarshal([]byte(out), &r); err != nil || r.Seq == 0 {
				return
			}
			led.mu.Lock()
			led.posts[r.Seq] = body
			led.mu.Unlock()
		},
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for name, work := range workers {
		copies := 1
		if name == "send" || name == "register" {
			copies = 2
		}
		for i := 0; i < copies; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					led.pause.RLock()
					work()
					led.pause.RUnlock()
				}
			}()
		}
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	check := func(when string) {
		t.Helper()
		led.pause.Lock()
		defer led.pause.Unlock()
		crashCheck(t, when, led, owner, url, as)
	}

	// waitFor gives the workers up to a minute until ready says yes: a
	// loaded machine may spend the whole fixed pause before the first
	// acknowledgement, and then a cycle or the campaign proves nothing.
	acknowledged := func() int {
		led.mu.Lock()
		defer led.mu.Unlock()
		n := 0
		for _, c := range led.counts {
			n += c
		}
		return n
	}
	waitFor := func(ready func() bool) {
		for deadline := time.Now().Add(time.Minute); !ready() && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
	}
	for cycle := 1; cycle <= *crashCycles; cycle++ {
		before := acknowledged()
		waitFor(func() bool { return acknowledged() > before })
		time.Sleep(time.Duration(200+rand.IntN(1000)) * time.Millisecond)
		srv.kill9()
		// The data dir a kill -9 leaves verifies, read-only, before any repair.
		led.pause.Lock()
		verifyDataDir(t, fmt.Sprintf("after kill %d", cycle), data, hasAudit)
		led.pause.Unlock()
		time.Sleep(time.Duration(rand.IntN(200)) * time.Millisecond) // clients meet a dead server
		srv = crashServe(t, addr, data, serveFlags...)
		t.Logf("cycle %d: restarted: %s", cycle, recoveredSummary(srv.recovered()))
		check(fmt.Sprintf("after restart %d", cycle))
	}
	waitFor(func() bool {
		led.mu.Lock()
		defer led.mu.Unlock()
		return led.counts["register"] > 0 && led.counts["send"] > 0 && led.counts["acl add"] > 0 && led.counts["join --token"] > 0
	})
	close(stop)
	wg.Wait()
	check("at the end")
	srv.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-srv.done:
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop within 15s of SIGTERM")
	}
	verifyDataDir(t, "after SIGTERM", data, hasAudit)

	led.mu.Lock()
	defer led.mu.Unlock()
	var kinds []string
	for k, n := range led.tried {
		kinds = append(kinds, fmt.Sprintf("%s %d/%d", k, led.counts[k], n))
	}
	t.Logf("%d kill -9 cycles; acknowledged/attempted: %s; %d acknowledged posts; zero acknowledged changes lost",
		*crashCycles, strings.Join(kinds, ", "), len(led.posts))
	if led.counts["register"] == 0 || led.counts["send"] == 0 || led.counts["acl add"] == 0 || led.counts["join --token"] == 0 {
		t.Errorf("the campaign acknowledged too little to prove anything: %v", led.counts)
	}
}

func recoveredSummary(line string) string {
	var rec struct {
		Snapshot string `json:"snapshot"`
		Replayed int    `json:"events_replayed"`
		LastSeq  uint64 `json:"last_seq"`
		Took     string `json:"took"`
	}
	if json.Unmarshal([]byte(line), &rec) != nil {
		return "(no recovery line)"
	}
	return fmt.Sprintf("snapshot %s, %d events replayed, last seq %d, %s", rec.Snapshot, rec.Replayed, rec.LastSeq, rec.Took)
}

// verifyDataDir checks every checksum and the hash chain of the event log,
// with eventlog.Reader and, when the binary has it, `audit verify`.
func verifyDataDir(t *testing.T, when, data string, hasAudit bool) {
	t.Helper()
	r, err := eventlog.OpenReader(filepath.Join(data, "events"))
	if err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	if _, _, err := r.Verify(); err != nil {
		t.Fatalf("%s: the event log does not verify: %v", when, err)
	}
	if hasAudit {
		if r := cli(t, nil, "audit", "verify", "--data-dir", data); r.code != 0 {
			t.Fatalf("%s: audit verify: exit %d\n%s%s", when, r.code, r.stdout, r.stderr)
		}
	}
}

// crashCheck compares what the server holds with the ledger.
func crashCheck(t *testing.T, when string, led *ledger, owner, url string, as func(...string) []string) {
	t.Helper()
	led.mu.Lock()
	defer led.mu.Unlock()
	list := func(args ...string) []byte {
		t.Helper()
		return []byte(ok(t, nil, as(append([]string{"--json"}, args...)...)...))
	}
	var users []string
	mustJSON(t, list("user", "list"), &users)
	have := setOf(users)
	for u := range led.users {
		if !have[u] {
			t.Errorf("%s: acknowledged registration of %s lost", when, u)
		}
	}
	var channels []struct{ Name string }
	mustJSON(t, list("channel", "list"), &channels)
	have = map[string]bool{}
	for _, c := range channels {
		have[c.Name] = true
	}
	for c := range led.channels {
		if !have[c] {
			t.Errorf("%s: acknowledged channel %s lost", when, c)
		}
	}
	var machines []struct{ Name string }
	mustJSON(t, list("machine", "list"), &machines)
	have = map[string]bool{}
	for _, m := range machines {
		have[m.Name] = true
	}
	for m := range led.machines {
		if !have[m] {
			t.Errorf("%s: acknowledged machine %s lost", when, m)
		}
	}
	var acl []string
	mustJSON(t, list("acl", "list", "--channel", "priv"), &acl)
	have = setOf(acl)
	for u, st := range led.acl {
		if (st == "in") != have[u] && st != "?" {
			t.Errorf("%s: %s should be %s the ACL of priv (last acknowledged change), ACL = %v", when, u, st, acl)
		}
	}
	for u := range led.redeemed {
		if !have[u] {
			t.Errorf("%s: %s redeemed an invite (acknowledged) but is not in the ACL of priv", when, u)
		}
	}
	var invites []struct{ Token string }
	mustJSON(t, list("invite", "list", "--channel", "priv"), &invites)
	have = map[string]bool{}
	for _, i := range invites {
		have[i.Token] = true
	}
	for tok := range led.invites {
		if !have[tok] {
			t.Errorf("%s: acknowledged invite %.6s… lost", when, tok)
		}
	}
	stored := readHistory(t, owner, url, "pub")
	for seq, body := range led.posts {
		if got, ok := stored[seq]; !ok || got != body {
			t.Errorf("%s: acknowledged post seq %d %q: stored %q (present %v)", when, seq, body, got, ok)
		}
	}
}

func setOf(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, s := range list {
		m[s] = true
	}
	return m
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
}

// readHistory reads a channel's whole history over the wire, as the
// registration in dir, and returns it by seq.
func readHistory(t *testing.T, dir, url, channel string) map[uint64]string {
	t.Helper()
	key, _, err := identity.LoadKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := identity.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	reg, found := cfg.FindServer(url)
	if !found {
		t.Fatalf("no registration for %s in %s", url, dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := control.Dial(ctx, &control.Options{URL: url, Key: key, Session: "crash-check", PinnedServerID: reg.ServerID})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	defer c.Close()
	if _, err := c.Request(ctx, &protocol.Frame{Type: protocol.TJoin, Channel: channel}); err != nil {
		t.Fatalf("join %s: %v", channel, err)
	}
	out := map[uint64]string{}
	after := uint64(0)
	for {
		a := after
		p, err := c.Request(ctx, &protocol.Frame{Type: protocol.TReadSince, Channel: channel, AfterSeq: &a})
		if err != nil {
			t.Fatalf("read_since %s after %d: %v", channel, after, err)
		}
		for _, m := range p.Messages {
			if m.Body != nil {
				out[m.Seq] = *m.Body
			}
		}
		if !p.More || p.NextSeq == after {
			return out
		}
		after = p.NextSeq
	}
}
