package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alecthomas/kong"
)

// freeAddr returns a loopback address that was free a moment ago, so a
// restarted server can come back on the same URL.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// serveDir starts `conclave serve` on addr and dir and waits until it
// listens.
func serveDir(t *testing.T, addr, dir string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"serve", "--bind", addr, "--data-dir", dir}, extra...)
	srv := start(t, []string{"CONCLAVE_LOG_FORMAT=json"}, true, args...)
	srv.expect(`"msg":"conclave server listening"`)
	go func() {
		for range srv.lines {
		}
	}()
	return srv
}

// TestKillNineKeepsAcknowledgedChanges kills the server with SIGKILL while
// clients are creating channels, restarts it on the same data dir, and
// checks that every change a client saw acknowledged is still there.
func TestKillNineKeepsAcknowledgedChanges(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	addr, data := freeAddr(t), t.TempDir()
	url := "ws://" + addr
	srv := serveDir(t, addr, data)
	cfg := t.TempDir()
	ok(t, nil, "--config-dir", cfg, "register", "alice", "--server", url)
	laptop := t.TempDir()
	ok(t, nil, "--config-dir", cfg, "machine", "add", "laptop", "--pubkey", strings.TrimSpace(ok(t, nil, "--config-dir", laptop, "key")))

	var mu sync.Mutex
	acked := map[string]bool{}
	ackedNow := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	for cycle := 0; cycle < 3; cycle++ {
		before := ackedNow()
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					name := fmt.Sprintf("c%d-%d-%d", cycle, w, i)
					if r := cli(t, nil, "--config-dir", cfg, "channel", "create", name); r.code == 0 {
						mu.Lock()
						acked[name] = true
						mu.Unlock()
					}
				}
			}(w)
		}
		// Kill while creations are streaming: once this cycle has one
		// acknowledged (however slow the machine), then a little later
		// each cycle.
		for deadline := time.Now().Add(60 * time.Second); ackedNow() == before && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(time.Duration(100+cycle*150) * time.Millisecond)
		srv.cmd.Process.Signal(syscall.SIGKILL)
		<-srv.done
		close(stop)
		wg.Wait()
		srv = serveDir(t, addr, data)
	}
	out := ok(t, nil, "--config-dir", cfg, "--json", "channel", "list")
	var list []struct{ Name string }
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("channel list %q: %v", out, err)
	}
	have := map[string]bool{}
	for _, c := range list {
		have[c.Name] = true
	}
	if len(acked) == 0 {
		t.Fatal("no channel creation was acknowledged")
	}
	for name := range acked {
		if !have[name] {
			t.Errorf("acknowledged channel %s is gone after kill -9", name)
		}
	}
	if !strings.Contains(ok(t, nil, "--config-dir", cfg, "machine", "list"), "laptop") {
		t.Error("enrolled machine lost after kill -9")
	}
	srv.stop(syscall.SIGTERM)
	t.Logf("%d acknowledged channels, all present after 3 kill -9 cycles", len(acked))
}

func TestServeRefusals(t *testing.T) {
	fails(t, 1, "data-dir", nil, "serve", "--bind", "127.0.0.1:0")
	fails(t, 1, "--max-body 2000000 is over the ceiling of 1048576 bytes", nil, "serve", "--bind", "127.0.0.1:0", "--ephemeral", "--max-body", "2000000")
	fails(t, 1, `--public-url "ftp://x" is not https://HOST`, nil, "serve", "--bind", "127.0.0.1:0", "--ephemeral", "--public-url", "ftp://x")
	data := t.TempDir()
	srv := serveDir(t, freeAddr(t), data)
	fails(t, 1, "in use by pid", nil, "serve", "--bind", freeAddr(t), "--data-dir", data)
	if code := srv.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exit code after SIGTERM = %d, want 0", code)
	}
	if _, err := os.Stat(filepath.Join(data, "snapshots")); err != nil {
		t.Fatal(err)
	}
}

// TestServeTLS serves wss:// with a certificate from a CA the test makes;
// clients trust it through SSL_CERT_FILE only.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	caPEM, certPEM, keyPEM := makeCert(t)
	for name, b := range map[string][]byte{"ca.pem": caPEM, "cert.pem": certPEM, "key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := freeAddr(t)
	srv := serveDir(t, addr, t.TempDir(), "--tls-cert", filepath.Join(dir, "cert.pem"), "--tls-key", filepath.Join(dir, "key.pem"))
	url := "wss://" + addr
	cfg := t.TempDir()
	trust := []string{"SSL_CERT_FILE=" + filepath.Join(dir, "ca.pem")}
	r := cli(t, []string{"SSL_CERT_FILE=" + filepath.Join(dir, "nothing.pem")}, "--config-dir", cfg, "register", "alice", "--server", url)
	if r.code != 1 || !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("register without trusting the CA: exit %d, stderr %q", r.code, r.stderr)
	}
	ok(t, trust, "--config-dir", cfg, "register", "alice", "--server", url)
	ok(t, trust, "--config-dir", cfg, "channel", "create", "ops")
	if out := ok(t, trust, "--config-dir", cfg, "who"); !strings.Contains(out, "alice/") {
		t.Fatalf("who over wss = %q", out)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	if resp, err := client.Get("http://" + addr + "/health"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP served on a TLS listener")
		}
	}
	srv.stop(syscall.SIGTERM)
}

// makeCert returns a CA certificate and a leaf for 127.0.0.1 signed by it.
func makeCert(t *testing.T) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "conclave test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(leafKey)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// TestServeDefaultsToLoopback: a plain `serve` listens on 127.0.0.1:4390,
// never on every interface.
func TestServeDefaultsToLoopback(t *testing.T) {
	var c CLI
	parser, err := kong.New(&c, kong.Name("conclave"), kong.Vars{"version": "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONCLAVE_BIND", "")
	os.Unsetenv("CONCLAVE_BIND")
	if _, err := parser.Parse([]string{"serve", "--ephemeral"}); err != nil {
		t.Fatal(err)
	}
	if c.Serve.Bind != "127.0.0.1:4390" {
		t.Fatalf("serve's default bind = %q, want 127.0.0.1:4390", c.Serve.Bind)
	}
	if out := ok(t, nil, "serve", "--help"); !strings.Contains(out, `--bind="127.0.0.1:4390"`) {
		t.Errorf("serve --help does not show the loopback default:\n%s", out)
	}
}

// TestServeFlagsHaveEnv: every serve flag can be set from the environment
// as CONCLAVE_ and its name (--admin is CONCLAVE_ADMINS), for Fly,
// containers and systemd.
func TestServeFlagsHaveEnv(t *testing.T) {
	var c CLI
	parser, err := kong.New(&c, kong.Name("conclave"), kong.Vars{"version": "test"})
	if err != nil {
		t.Fatal(err)
	}
	var serve *kong.Node
	for _, n := range parser.Model.Children {
		if n.Name == "serve" {
			serve = n
		}
	}
	if serve == nil {
		t.Fatal("no serve command")
	}
	for _, f := range serve.Flags {
		want := "CONCLAVE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if f.Name == "admin" {
			want = "CONCLAVE_ADMINS"
		}
		if len(f.Envs) != 1 || f.Envs[0] != want {
			t.Errorf("serve --%s: env %v, want %s", f.Name, f.Envs, want)
		}
	}
}

// TestServeByEnvironment configures a server through the environment
// alone: closed registration, a separate metrics listener, a retention and
// a rate limit; /metrics is then served only on the metrics listener.
func TestServeByEnvironment(t *testing.T) {
	metricsAddr := freeAddr(t)
	srv := start(t, []string{"CONCLAVE_LOG_FORMAT=json", "CONCLAVE_BIND=127.0.0.1:0", "CONCLAVE_EPHEMERAL=true",
		"CONCLAVE_REGISTRATION=closed", "CONCLAVE_METRICS_BIND=" + metricsAddr, "CONCLAVE_HISTORY_RETENTION=36h",
		"CONCLAVE_RATE_LIMIT=0", "CONCLAVE_MAX_BODY=100"}, true, "serve")
	line := srv.expect(`"msg":"conclave server listening"`)
	go func() {
		for range srv.lines {
		}
	}()
	defer srv.stop(syscall.SIGTERM)
	var rec struct{ Addr, URL string }
	if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Addr == "" {
		t.Fatalf("listening line %q: %v", line, err)
	}
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		io.Copy(&b, resp.Body)
		return resp.StatusCode, b.String()
	}
	if code, _ := get("http://" + rec.Addr + "/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics on the main listener with CONCLAVE_METRICS_BIND set: %d, want 404", code)
	}
	if code, body := get("http://" + metricsAddr + "/metrics"); code != http.StatusOK || !strings.Contains(body, "conclave_sessions ") {
		t.Errorf("/metrics on the metrics listener: %d %.80q", code, body)
	}
	if code, body := get("http://" + rec.Addr + "/health"); code != http.StatusOK || body != "ok" {
		t.Errorf("/health on the main listener: %d %q", code, body)
	}
	fails(t, 1, "closed", []string{"CONCLAVE_CONFIG_DIR=" + t.TempDir()}, "register", "alice", "--server", rec.URL)
	fails(t, 1, "invalid --history-retention", []string{"CONCLAVE_HISTORY_RETENTION=soon"}, "serve", "--ephemeral", "--bind", "127.0.0.1:0")
	fails(t, 2, `--registration must be one of "open","closed" but got "ajar"`, []string{"CONCLAVE_REGISTRATION=ajar"}, "serve", "--ephemeral", "--bind", "127.0.0.1:0")
}
