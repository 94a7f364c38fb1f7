package main

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conclave/conclave/identity"
)

// whoUntil polls c's who until it satisfies ok, for at most 40 s, and
// returns it.
func whoUntil(t *testing.T, c *mcpClient, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		text, isErr := c.callWithin("who", nil, 15*time.Second)
		if !isErr && ok(text) {
			return text
		}
		if time.Now().After(deadline) {
			t.Fatalf("who never showed %s; last:\n%s\nnotifications:\n%s", what, text, c.dump())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sessions returns the session paths in a who answer that start with
// prefix.
func sessions(who, prefix string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(who, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
		if strings.HasPrefix(f, prefix) {
			out = append(out, f)
		}
	}
	return out
}

func isLink(n *rpcNote) bool { return n.Meta["kind"] == "link" }

// TestBridgeTwoInOneDirectory: two bridges started in the same directory
// with the same config and no --as: the first keeps the directory's name
// and hears nothing; the latecomer takes name-2 and is told so once.
func TestBridgeTwoInOneDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and bridges")
	}
	t.Parallel()
	w := newWorld(t, nil, "alice")
	cwd := filepath.Join(t.TempDir(), "fleet")
	os.Mkdir(cwd, 0o755)
	a := startBridge(t, w.dirs["alice"], cwd)
	whoUntil(t, a, "alice/alice-m/fleet", func(s string) bool { return strings.Contains(s, "alice/alice-m/fleet") })
	b := startBridge(t, w.dirs["alice"], cwd)
	got := whoUntil(t, a, "fleet and fleet-2", func(s string) bool { return len(sessions(s, "alice/alice-m/fleet")) == 2 })
	if s := sessions(got, "alice/alice-m/fleet"); strings.Join(s, " ") != "alice/alice-m/fleet alice/alice-m/fleet-2" {
		t.Fatalf("sessions %q, want fleet (the first) and fleet-2 (the latecomer)", s)
	}
	n := b.wait("the latecomer's handle notice", 10*time.Second, isLink)
	if !strings.Contains(n.Content, "alice/alice-m/fleet-2") || !strings.Contains(n.Content, "`--as HANDLE`") {
		t.Errorf("the latecomer's notice %q, want its new path and the --as hint", n.Content)
	}
	b.none("a second link notice", time.Second, isLink)
	a.none("any link notice to the first session", 0, isLink)
	if text := b.ok("who", nil); len(sessions(text, "alice/alice-m/fleet")) != 2 {
		t.Errorf("the latecomer's who: %q", text)
	}
}

// TestBridgeTakesBackItsOwnSession: a bridge whose connection breaks
// without the server noticing (the server's side stays open: half-open)
// dials again and takes back its own handle, not name-2, while a second
// bridge in the same directory keeps name-2 and hears nothing.
func TestBridgeTakesBackItsOwnSession(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and bridges")
	}
	t.Parallel()
	w := newWorld(t, nil, "alice")
	proxy := newStrandProxy(t, strings.TrimPrefix(w.url, "ws://"))
	// viaProxy is alice's config with the server reached through the proxy.
	viaProxy := t.TempDir()
	data, err := os.ReadFile(filepath.Join(w.dirs["alice"], "id_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(viaProxy, "id_ed25519"), data, 0o600)
	cfg, err := identity.LoadConfig(w.dirs["alice"])
	if err != nil {
		t.Fatal(err)
	}
	cfg.Servers[0].URL = "ws://" + proxy.ln.Addr().String()
	if err := cfg.Save(viaProxy); err != nil {
		t.Fatal(err)
	}
	cwd := filepath.Join(t.TempDir(), "fleet")
	os.Mkdir(cwd, 0o755)

	a := startBridge(t, viaProxy, cwd)
	whoUntil(t, a, "alice/alice-m/fleet", func(s string) bool { return strings.Contains(s, "alice/alice-m/fleet") })
	b := startBridge(t, w.dirs["alice"], cwd)
	b.wait("the latecomer's handle notice", 10*time.Second, isLink)

	proxy.strand()
	a.wait("the reconnection", 30*time.Second, func(n *rpcNote) bool {
		return isLink(n) && strings.Contains(n.Content, "Reconnected") && strings.Contains(n.Content, "`alice/alice-m/fleet`")
	})
	if proxy.stranded() == 0 {
		t.Fatal("the proxy held no server-side connection open: the test did not make a half-open session")
	}
	got := whoUntil(t, b, "fleet and fleet-2 only", func(s string) bool { return len(sessions(s, "alice/alice-m/fleet")) == 2 })
	if s := sessions(got, "alice/alice-m/fleet"); strings.Join(s, " ") != "alice/alice-m/fleet alice/alice-m/fleet-2" {
		t.Fatalf("sessions %q after the reconnection, want fleet (taken back) and fleet-2", s)
	}
	a.none("a renaming notice", 0, func(n *rpcNote) bool { return strings.Contains(n.Content, "fleet-2") })
	b.none("any link notice to the other session", time.Second, isLink)
}

// TestBridgeExplicitHandleConflict: a second bridge asking for a --as
// handle that a live bridge holds is refused, told who holds it, and
// connects once the handle is free; the holder hears nothing. Neither is
// renamed.
func TestBridgeExplicitHandleConflict(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and bridges")
	}
	t.Parallel()
	w := newWorld(t, nil, "alice")
	a := startBridge(t, w.dirs["alice"], "", "--as", "twin")
	whoUntil(t, a, "alice/alice-m/twin", func(s string) bool { return strings.Contains(s, "alice/alice-m/twin") })
	b := startBridge(t, w.dirs["alice"], "", "--as", "twin")
	n := b.wait("the refusal notice", 15*time.Second, isLink)
	for _, want := range []string{
		"as `twin`",
		`session handle "twin" is in use by another process of this machine: alice/alice-m/twin (conclave-bridge/`,
		"`--as HANDLE`",
	} {
		if !strings.Contains(n.Content, want) {
			t.Errorf("refusal notice %q does not contain %q", n.Content, want)
		}
	}
	a.none("any link notice to the holder", time.Second, isLink)
	if got := sessions(a.ok("who", nil), "alice/alice-m/twin"); len(got) != 1 {
		t.Errorf("sessions %q, want one twin", got)
	}
	// The holder goes away: the second bridge gets the handle.
	a.in.Close()
	<-a.done
	b.wait("the connection once twin is free", 40*time.Second, func(n *rpcNote) bool {
		return isLink(n) && strings.Contains(n.Content, "Reconnected") && strings.Contains(n.Content, "`alice/alice-m/twin`")
	})
	for _, c := range []*mcpClient{a, b} {
		c.none("a renamed explicit handle", 0, func(n *rpcNote) bool { return strings.Contains(n.Content, "twin-2") })
	}
}

// strandProxy forwards TCP connections to target; strand breaks the
// client side of every connection while holding the server side open, as
// a network that drops a laptop's connection does: the server keeps a
// half-open session until its idle timeout.
type strandProxy struct {
	ln     net.Listener
	target string

	// mu guards pairs and held.
	mu    sync.Mutex
	pairs [][2]net.Conn // client side, server side
	held  map[net.Conn]bool
}

func newStrandProxy(t *testing.T, target string) *strandProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &strandProxy{ln: ln, target: target, held: map[net.Conn]bool{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, pair := range p.pairs {
			pair[0].Close()
			pair[1].Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.pairs = append(p.pairs, [2]net.Conn{c, s})
			p.mu.Unlock()
			wg.Go(func() {
				io.Copy(s, c)
				p.mu.Lock()
				if !p.held[s] {
					s.Close()
				}
				p.mu.Unlock()
			})
			wg.Go(func() { io.Copy(c, s); c.Close() })
		}
	})
	return p
}

// strand closes the client side of every connection so far and holds
// their server side open.
func (p *strandProxy) strand() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pair := range p.pairs {
		p.held[pair[1]] = true
		pair[0].Close()
	}
}

// stranded is the number of server-side connections held open.
func (p *strandProxy) stranded() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.held)
}

// TestTailExplicitHandleConflict: `tail --as H` while a bridge of the same
// machine holds H ends at once with one error line naming the holder; the
// bridge keeps its session.
func TestTailExplicitHandleConflict(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and a bridge")
	}
	t.Parallel()
	w := newWorld(t, nil, "alice")
	a := startBridge(t, w.dirs["alice"], "", "--as", "bt")
	whoUntil(t, a, "alice/alice-m/bt", func(s string) bool { return strings.Contains(s, "alice/alice-m/bt") })
	env := []string{"CONCLAVE_CONFIG_DIR=" + w.dirs["alice"]}
	ok(t, env, "channel", "create", "ops")
	fails(t, 1, `conflict: session handle "bt" is in use by another process of this machine: alice/alice-m/bt (conclave-bridge/`,
		env, "tail", "--channel", "ops", "--as", "bt")
	a.none("any link notice to the holder", time.Second, isLink)
	if got := sessions(a.ok("who", nil), "alice/alice-m/bt"); len(got) != 1 {
		t.Errorf("sessions %q, want the bridge's bt", got)
	}
}
