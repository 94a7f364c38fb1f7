package control

import (
	"context"
	"crypto/ed25519"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

func TestDialRegister(t *testing.T) {
	f := newFake(t)
	f.admin = true
	key := newKey(t)
	c, err := Dial(context.Background(), &Options{
		URL: f.url, Key: key, Session: "cli-42",
		Register:   &Registration{Username: "alice", Machine: "wa"},
		ClientName: "conclave-cli/test",
	})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	if got, want := c.Path(), "alice/wa/cli-42"; got != want {
		t.Errorf("Path() = %q, want %q", got, want)
	}
	if got, want := c.ServerID(), f.id; got != want {
		t.Errorf("ServerID() = %q, want %q", got, want)
	}
	if !c.Admin() {
		t.Error("Admin() = false, want true")
	}
	if got, want := f.received(), []string{"hello", "register", "auth"}; !slices.Equal(got, want) {
		t.Errorf("server received %v, want %v", got, want)
	}
	f.mu.Lock()
	hello, reg := f.got[0], f.got[1]
	f.mu.Unlock()
	if hello.Client != "conclave-cli/test" || hello.Version != protocol.Version || hello.Session != "cli-42" {
		t.Errorf("hello = %+v", hello)
	}
	if reg.Username != "alice" || reg.Machine != "wa" || !ed25519.PublicKey(reg.Pubkey).Equal(key.Public()) {
		t.Errorf("register = %+v", reg)
	}
	// The registered key now logs in, pinned.
	c2, err := Dial(context.Background(), &Options{URL: f.url, Key: key, Session: "other", PinnedServerID: f.id})
	if err != nil {
		t.Fatalf("login after register: %v", err)
	}
	defer c2.Close()
	if got, want := c2.Path(), "alice/wa/other"; got != want {
		t.Errorf("Path() = %q, want %q", got, want)
	}
}

func TestDialPinMismatchRefusesToSign(t *testing.T) {
	f := newFake(t)
	key := newKey(t)
	f.enroll(key.Public().(ed25519.PublicKey), "alice/wa")
	_, err := Dial(context.Background(), &Options{
		URL: f.url, Key: key, Session: "s", PinnedServerID: "srv-old",
	})
	if !errors.Is(err, identity.ErrServerIDMismatch) {
		t.Fatalf("Dial error = %v, want ErrServerIDMismatch", err)
	}
	for _, want := range []string{"srv-old", f.id, "conclave server remove " + f.url} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// Give the fake a moment to read whatever the client might have sent.
	time.Sleep(100 * time.Millisecond)
	if got := f.received(); slices.Contains(got, "auth") || slices.Contains(got, "register") {
		t.Errorf("server received %v after a pin mismatch; want no auth or register", got)
	}
}

func TestDialHeaderAndChallengeDisagree(t *testing.T) {
	f := newFake(t)
	f.headerID = "srv-header"
	key := newKey(t)
	_, err := Dial(context.Background(), &Options{URL: f.url, Key: key, Session: "s"})
	if err == nil || !strings.Contains(err.Error(), "refusing to authenticate") {
		t.Fatalf("Dial error = %v, want a refusal", err)
	}
	time.Sleep(50 * time.Millisecond)
	if got := f.received(); slices.Contains(got, "auth") {
		t.Errorf("server received %v; want no auth", got)
	}
}

func TestDialErrorFrames(t *testing.T) {
	tests := []struct {
		name string
		opts func(f *fakeServer, o *Options)
		code protocol.Code
		msg  string
	}{
		{"unknown key", func(f *fakeServer, o *Options) {}, protocol.CodeUnauthorized, "unknown machine key"},
		{"version refused at hello", func(f *fakeServer, o *Options) {
			f.before = func(ctx context.Context, s *fakeSession) {
				s.read(ctx)
				s.fail(ctx, protocol.CodeVersionMismatch, "incompatible protocol version: server speaks 1, client sent 1")
			}
		}, protocol.CodeVersionMismatch, "incompatible"},
		{"error after auth", func(f *fakeServer, o *Options) {
			f.enroll(o.Key.Public().(ed25519.PublicKey), "alice/wa")
			f.established = func(s *fakeSession) []*protocol.Frame {
				return []*protocol.Frame{{Type: protocol.TError, Code: protocol.CodeConflict, Message: "username taken"}}
			}
		}, protocol.CodeConflict, "username taken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			o := &Options{URL: f.url, Key: newKey(t), Session: "s"}
			tt.opts(f, o)
			_, err := Dial(context.Background(), o)
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code != tt.code || !strings.Contains(pe.Message, tt.msg) {
				t.Fatalf("Dial error = %v, want %s containing %q", err, tt.code, tt.msg)
			}
		})
	}
}

func TestDialTimesOut(t *testing.T) {
	t.Run("no upgrade", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		done := make(chan struct{})
		defer close(done)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { <-done; c.Close() }() // hold it open, say nothing
			}
		}()
		checkDialTimeout(t, "ws://"+ln.Addr().String()+"/")
	})
	t.Run("upgrade then silence", func(t *testing.T) {
		f := newFake(t)
		f.before = func(ctx context.Context, s *fakeSession) {
			for {
				if _, err := s.read(ctx); err != nil {
					return
				}
			}
		}
		checkDialTimeout(t, f.url)
	})
}

func checkDialTimeout(t *testing.T, url string) {
	t.Helper()
	start := time.Now()
	_, err := Dial(context.Background(), &Options{
		URL: url, Key: newKey(t), Session: "s", DialTimeout: 300 * time.Millisecond,
	})
	var te *TimeoutError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "timed out") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial error = %v, want a timeout", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("Dial took %v with a 300ms timeout", el)
	}
}

func TestDialCallerContext(t *testing.T) {
	f := newFake(t)
	f.before = func(ctx context.Context, s *fakeSession) { s.read(ctx); <-ctx.Done() }
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := Dial(ctx, &Options{URL: f.url, Key: newKey(t), Session: "s"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial error = %v, want context.Canceled", err)
	}
}

func TestDialRejectsBadOptions(t *testing.T) {
	key := newKey(t)
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"scheme", Options{URL: "ftp://h", Key: key, Session: "s"}, "invalid server URL"},
		{"no host", Options{URL: "ws://", Key: key, Session: "s"}, "no host"},
		{"no key", Options{URL: "ws://h", Session: "s"}, "machine key"},
		{"session", Options{URL: "ws://h", Key: key, Session: "a/b"}, "session handle"},
		{"username", Options{URL: "ws://h", Key: key, Session: "s", Register: &Registration{Username: "", Machine: "m"}}, "username"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Dial(context.Background(), &tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Dial error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestDialNotAWebSocketServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		c.Read(buf)
		c.Write([]byte("HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
	}()
	_, err = Dial(context.Background(), &Options{URL: "ws://" + ln.Addr().String(), Key: newKey(t), Session: "s"})
	if err == nil || !strings.Contains(err.Error(), "HTTP 426") {
		t.Fatalf("Dial error = %v, want one naming HTTP 426", err)
	}
}

func TestDialUnreachable(t *testing.T) {
	_, err := Dial(context.Background(), &Options{URL: "ws://127.0.0.1:1", Key: newKey(t), Session: "s"})
	if err == nil || !strings.Contains(err.Error(), "connect to ws://127.0.0.1:1") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Dial error = %v, want one line naming the URL", err)
	}
}

// TestDialTLS checks that wss:// uses Go's default TLS configuration: the
// system roots, which SSL_CERT_FILE replaces on Linux. The roots are
// loaded once per process, so no other test of this package may use TLS
// before this one.
func TestDialTLS(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SSL_CERT_FILE is honoured on Linux")
	}
	f, cert := newFakeTLS(t)
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSL_CERT_FILE", file)
	t.Setenv("SSL_CERT_DIR", t.TempDir())
	c, err := Dial(context.Background(), &Options{
		URL: f.url, Key: newKey(t), Session: "s", Register: &Registration{Username: "alice", Machine: "wa"},
	})
	if err != nil {
		t.Fatalf("Dial %s: %v", f.url, err)
	}
	defer c.Close()
	if _, err := c.Request(context.Background(), &protocol.Frame{Type: protocol.TPing}); err != nil {
		t.Fatalf("ping over TLS: %v", err)
	}
}

func TestDialCheckServerIDRefusesBeforeSigning(t *testing.T) {
	f := newFake(t)
	key := newKey(t)
	f.enroll(key.Public().(ed25519.PublicKey), "alice/wa")
	refuse := errors.New("already connected to this server")
	var seen string
	_, err := Dial(context.Background(), &Options{URL: f.url, Key: key, Session: "s",
		CheckServerID: func(id string) error { seen = id; return refuse }})
	if !errors.Is(err, refuse) || seen != f.id {
		t.Fatalf("Dial error = %v (saw id %q), want the callback's error for id %q", err, seen, f.id)
	}
	time.Sleep(100 * time.Millisecond)
	if got := f.received(); slices.Contains(got, "auth") {
		t.Errorf("server received %v after CheckServerID refused; want no auth", got)
	}
	conn, err := Dial(context.Background(), &Options{URL: f.url, Key: key, Session: "s",
		CheckServerID: func(string) error { return nil }})
	if err != nil {
		t.Fatalf("Dial with an accepting CheckServerID: %v", err)
	}
	conn.Close()
}
