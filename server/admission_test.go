package server

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/conclave/conclave/protocol"
)

func dialStatus(t *testing.T, url string) (int, *websocket.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return resp.StatusCode, nil
	}
	t.Cleanup(func() { c.CloseNow() })
	return http.StatusSwitchingProtocols, c
}

func TestPerIPConnectionLimit(t *testing.T) {
	env := newTestEnv(t, Config{MaxConnsPerIP: 3, HandshakesPerIP: -1})
	var open []*websocket.Conn
	for i := 0; i < 3; i++ {
		code, c := dialStatus(t, env.url)
		if code != http.StatusSwitchingProtocols {
			t.Fatalf("connection %d refused: %d", i, code)
		}
		open = append(open, c)
	}
	if code, _ := dialStatus(t, env.url); code != http.StatusTooManyRequests {
		t.Fatalf("4th connection: %d, want 429", code)
	}
	open[0].CloseNow()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _ := dialStatus(t, env.url)
		if code == http.StatusSwitchingProtocols {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a slot freed by a closed connection was never reused")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPerIPHandshakeRate(t *testing.T) {
	env := newTestEnv(t, Config{HandshakesPerIP: 5})
	refused := 0
	for i := 0; i < 20; i++ {
		if code, c := dialStatus(t, env.url); code == http.StatusTooManyRequests {
			refused++
		} else if c != nil {
			c.CloseNow()
		}
	}
	if refused == 0 {
		t.Fatal("20 handshakes in a burst with a limit of 5/s: none refused")
	}
}

func TestAdminEventRateLimit(t *testing.T) {
	env := newTestEnv(t, Config{AdminRate: 1, AdminBurst: 3})
	a := env.register("aaron", "wa", "s") // the registration spends one token
	for i := 0; i < 2; i++ {
		a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "c" + string(rune('a'+i))})
	}
	r := a.fail(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "cz"}, protocol.CodeRateLimited)
	if !strings.Contains(r.Message, "retry after") {
		t.Fatalf("refusal = %q", r.Message)
	}
	// Other users are not affected; joins are not admin events.
	b := env.register("bob", "m", "s")
	b.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "bobs"})
	a.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "bobs"})
}

func TestClosedRegistration(t *testing.T) {
	rootKey := newKey(t)
	env := newTestEnv(t, Config{RegistrationClosed: true, Admins: []Admin{{User: "root", Key: rootKey.Public().(ed25519.PublicKey)}}})
	if _, f := env.handshake(newKey(t), "s", &protocol.Frame{Username: "mallory", Machine: "m"}); f.Code != protocol.CodeUnauthorized || !strings.Contains(f.Message, "closed") {
		t.Fatalf("open registration on a closed server: %+v", f)
	}
	root, f := env.handshake(rootKey, "s", &protocol.Frame{Username: "root", Machine: "m"})
	if f.Type != protocol.TEstablished {
		t.Fatalf("the pinned admin could not register: %+v", f)
	}
	bobKey := newKey(t)
	root.ok(&protocol.Frame{Type: protocol.TUserAdd, User: "bob", Machine: "laptop", Pubkey: pubOf(bobKey)})
	if b := env.login(bobKey, "s"); b.path != "bob/laptop/s" {
		t.Fatalf("added user's path = %q", b.path)
	}
	b := env.login(bobKey, "t")
	b.fail(&protocol.Frame{Type: protocol.TUserAdd, User: "eve", Machine: "m", Pubkey: pubOf(newKey(t))}, protocol.CodeUnauthorized)
	root.fail(&protocol.Frame{Type: protocol.TUserAdd, User: "bob", Machine: "m", Pubkey: pubOf(newKey(t))}, protocol.CodeConflict)
}

// TestSlowHandshakeRateStillAdmitsOne: a handshake rate below one per
// second (its burst is the rate, rounded down to 0) still lets a first
// handshake through: a bucket holds at least one token.
func TestSlowHandshakeRateStillAdmitsOne(t *testing.T) {
	env := newTestEnv(t, Config{HandshakesPerIP: 0.4})
	env.register("aaron", "wa", "s")
	if code, c := dialStatus(t, env.url); code != http.StatusTooManyRequests {
		if c != nil {
			c.CloseNow()
		}
		t.Fatalf("a second handshake at once with a limit of 0.4/s: status %d, want 429", code)
	}
}

// TestBucketIsXTimeRate: the token buckets are golang.org/x/time/rate's.
func TestBucketIsXTimeRate(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	if !strings.Contains(string(out), "golang.org/x/time/rate\n") {
		t.Fatalf("server does not import golang.org/x/time/rate:\n%s", out)
	}
}
