package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/coder/websocket"

	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

// The browser test drives the web client in a real headless Chromium,
// over wss:// with a test CA and a name that is not localhost, so that the
// page runs in the secure context users get. It needs a Chromium binary:
// CONCLAVE_BROWSER names it (.ci/run installs Debian's chromium and sets
// it). Without the variable the test is skipped; with it, a missing or
// broken browser fails the test.

const webHost = "chat.conclave.test"

// browserPath returns $CONCLAVE_BROWSER, skipping the test if unset.
func browserPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("CONCLAVE_BROWSER")
	if p == "" {
		t.Skip("set CONCLAVE_BROWSER=/usr/bin/chromium to run the browser tests (.ci/run does)")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("CONCLAVE_BROWSER=%s: %v", p, err)
	}
	return p
}

// testPKI writes a CA and a server certificate for webHost and 127.0.0.1
// into dir, and returns the files and the base64 SHA-256 of the server
// key's SPKI (what Chromium's --ignore-certificate-errors-spki-list takes).
type testPKI struct {
	caFile, certFile, keyFile string
	spki                      string
	pool                      *x509.CertPool
}

func newTestPKI(t *testing.T, dir string) testPKI {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "conclave test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: webHost},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{webHost}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	p := testPKI{caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem")}
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(p.caFile, "CERTIFICATE", caDER)
	write(p.certFile, "CERTIFICATE", leafDER)
	write(p.keyFile, "EC PRIVATE KEY", keyDER)
	spkiDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	sum := sha256.Sum256(spkiDER)
	p.spki = base64.StdEncoding.EncodeToString(sum[:])
	p.pool = x509.NewCertPool()
	p.pool.AddCert(caCert)
	return p
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// webWorld is a TLS server with a public URL on webHost, and alice
// registered from the config dir "laptop" (over wss://127.0.0.1).
type webWorld struct {
	t       *testing.T
	pki     testPKI
	url     string // wss://127.0.0.1:PORT, what the CLI uses
	public  string // https://chat.conclave.test:PORT, what the browser opens
	laptop  []string
	dataDir string
}

func newWebWorld(t *testing.T, serveArgs ...string) *webWorld {
	t.Helper()
	dir := t.TempDir()
	w := &webWorld{t: t, pki: newTestPKI(t, dir)}
	port := freePort(t)
	w.url = fmt.Sprintf("wss://127.0.0.1:%d", port)
	w.public = fmt.Sprintf("https://%s:%d", webHost, port)
	args := append([]string{"serve", "--bind", fmt.Sprintf("127.0.0.1:%d", port), "--ephemeral",
		"--tls-cert", w.pki.certFile, "--tls-key", w.pki.keyFile, "--rate-limit", "0", "--public-url", w.public}, serveArgs...)
	srv := start(t, []string{"CONCLAVE_LOG_FORMAT=json"}, true, args...)
	srv.expect(`"msg":"conclave server listening"`)
	go func() {
		for range srv.lines {
		}
	}()
	t.Cleanup(func() {
		srv.cmd.Process.Signal(os.Interrupt)
		<-srv.done
	})
	w.laptop = w.env("laptop")
	ok(t, w.laptop, "key")
	ok(t, w.laptop, "register", "alice", "--server", w.url, "--machine", "laptop")
	return w
}

// env is the environment of a CLI machine with config dir name.
func (w *webWorld) env(name string) []string {
	return []string{"CONCLAVE_CONFIG_DIR=" + filepath.Join(w.dataDirRoot(), name), "SSL_CERT_FILE=" + w.pki.caFile}
}

func (w *webWorld) dataDirRoot() string {
	if w.dataDir == "" {
		w.dataDir = w.t.TempDir()
	}
	return w.dataDir
}

// link runs `conclave web` on the laptop and returns the enrollment link.
func (w *webWorld) link(name string) string {
	w.t.Helper()
	var r struct{ URL, Machine, ExpiresAt string }
	out := ok(w.t, w.laptop, "web", "--name", name, "--json")
	if err := json.Unmarshal([]byte(out), &r); err != nil || !strings.HasPrefix(r.URL, w.public+"/web/#enroll=") || r.Machine != name {
		w.t.Fatalf("conclave web --json = %q (%v)", out, err)
	}
	return r.URL
}

// bulkSession is a raw protocol session of the laptop's key, for bulk posts.
type bulkSession struct {
	t    *testing.T
	conn *websocket.Conn
	n    int
}

func (w *webWorld) bulk(handle string) *bulkSession { return w.rawSession(handle, "") }

// rawSession logs in with the laptop's key; role "bridge" makes it the
// session an agent's bridge opens.
func (w *webWorld) rawSession(handle, role string) *bulkSession {
	t := w.t
	t.Helper()
	key, _, err := identity.LoadKey(filepath.Join(w.dataDirRoot(), "laptop"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: w.pki.pool}}}
	conn, _, err := websocket.Dial(ctx, w.url, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadLimit(64 << 20)
	t.Cleanup(func() { conn.CloseNow() })
	p := &bulkSession{t: t, conn: conn}
	p.send(&protocol.Frame{Type: protocol.THello, Version: 1, Session: handle, Role: role})
	ch := p.read()
	p.send(&protocol.Frame{Type: protocol.TAuth, Pubkey: key.Public().(ed25519.PublicKey), Signature: protocol.SignAuth(key, ch.ServerID, ch.Nonce, handle)})
	if f := p.read(); f.Type != protocol.TEstablished {
		t.Fatalf("bulkSession login: %+v", f)
	}
	return p
}

func (p *bulkSession) send(f *protocol.Frame) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.conn.Write(ctx, websocket.MessageText, protocol.MustEncode(f)); err != nil {
		p.t.Fatal(err)
	}
}

// next returns the next frame of type typ, skipping others.
func (p *bulkSession) next(typ string) *protocol.Frame {
	p.t.Helper()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, b, err := p.conn.Read(ctx)
		cancel()
		if err != nil {
			p.t.Fatalf("waiting for %s: %v", typ, err)
		}
		fs, _ := protocol.DecodeMessage(b)
		for _, f := range fs {
			if f.Type == typ {
				return f
			}
		}
	}
}

func (p *bulkSession) read() *protocol.Frame {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, b, err := p.conn.Read(ctx)
	if err != nil {
		p.t.Fatal(err)
	}
	fs, err := protocol.DecodeMessage(b)
	if err != nil || len(fs) != 1 {
		p.t.Fatalf("bulkSession read %q: %v", b, err)
	}
	return fs[0]
}

// request sends f and waits for its reply, skipping other frames.
func (p *bulkSession) request(f *protocol.Frame) *protocol.Frame {
	p.t.Helper()
	p.n++
	f.ID = fmt.Sprint("r", p.n)
	p.send(f)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, b, err := p.conn.Read(ctx)
		cancel()
		if err != nil {
			p.t.Fatal(err)
		}
		fs, _ := protocol.DecodeMessage(b)
		for _, r := range fs {
			if r.ID == f.ID {
				if r.Type == protocol.TError {
					p.t.Fatalf("%s: %s", f.Type, r.Message)
				}
				return r
			}
		}
	}
}

// postMany posts bodies to channel, pipelined, and waits for the last ack.
func (p *bulkSession) postMany(channel string, bodies []string) {
	p.t.Helper()
	for i := range bodies {
		p.send(&protocol.Frame{Type: protocol.TChannelMsg, ID: fmt.Sprint("bulk", i), Channel: channel, Body: &bodies[i]})
	}
	last := fmt.Sprint("bulk", len(bodies)-1)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		_, b, err := p.conn.Read(ctx)
		cancel()
		if err != nil {
			p.t.Fatal(err)
		}
		fs, _ := protocol.DecodeMessage(b)
		for _, r := range fs {
			if r.Type == protocol.TError {
				p.t.Fatalf("bulk post: %s", r.Message)
			}
			if r.ID == last {
				return
			}
		}
	}
}

// browser is one headless Chromium with a fresh profile, and its tab.
type browser struct {
	t       *testing.T
	ctx     context.Context
	errors  chan string // uncaught exceptions and CSP refusals in the page
	cancels []context.CancelFunc
	done    chan struct{} // closed when the console reader has stopped
}

func (w *webWorld) browser(exec string) *browser {
	t := w.t
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exec),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("host-resolver-rules", "MAP "+webHost+" 127.0.0.1"),
		chromedp.Flag("ignore-certificate-errors-spki-list", w.pki.spki),
		chromedp.WindowSize(1280, 860),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: ctx, errors: make(chan string, 100), cancels: []context.CancelFunc{cancelC, cancelA}, done: make(chan struct{})}
	if err := chromedp.Do(ctx); err != nil {
		cancelC()
		cancelA()
		t.Fatalf("start %s: %v", exec, err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		defer close(b.done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.IsException() || (m.Type == chromedp.ConsoleError && strings.Contains(m.Text, "Content Security Policy")) {
				select {
				case b.errors <- m.String():
				default:
				}
			}
		}
	}()
	t.Cleanup(b.close)
	return b
}

func (b *browser) close() {
	for _, c := range b.cancels {
		c()
	}
	<-b.done
}

func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// wait evaluates expr in the page until it is true.
func (b *browser) wait(what, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(25 * time.Second)
	for {
		var ok bool // a page being replaced has no elements yet: false, not an error
		b.eval("(() => { try { return !!("+expr+") } catch { return false } })()", &ok)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("waiting for %s: %s is still false; notice: %q", what, expr, b.text("#notice"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eval evaluates expr in the page and decodes its value into out.
func (b *browser) eval(expr string, out any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			b.t.Fatalf("evaluate %s: %s: %v", expr, raw, err)
		}
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	var s string
	b.eval(fmt.Sprintf(`document.querySelector(%q)?.textContent ?? ""`, sel), &s)
	return s
}

// noErrors fails the test on any uncaught exception in the page.
func (b *browser) noErrors() {
	b.t.Helper()
	select {
	case e := <-b.errors:
		b.t.Fatalf("error in the page: %s", e)
	default:
	}
}

// seqs returns the seqs of the messages shown, in page order.
func (b *browser) seqs() []int {
	b.t.Helper()
	var out []int
	b.eval(`Array.from(document.querySelectorAll("#messages .msg[data-seq]"), e => +e.dataset.seq)`, &out)
	return out
}

func checkOrdered(t *testing.T, seqs []int) {
	t.Helper()
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("messages out of order or duplicated at %d: %v", i, seqs[max(0, i-3):min(len(seqs), i+3)])
		}
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func hasMessage(body string) string {
	return fmt.Sprintf(`Array.from(document.querySelectorAll("#messages .msg .body")).some(e => e.textContent.includes(%s))`, jsString(body))
}

func TestWebBrowser(t *testing.T) {
	exe := browserPath(t)
	w := newWebWorld(t)
	ok(t, w.laptop, "channel", "create", "ops")
	p := w.bulk("bulk")
	p.request(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	var old []string
	for i := 0; i < 150; i++ {
		old = append(old, fmt.Sprintf("old message %03d", i))
	}
	p.postMany("ops", old)

	// Enroll: the link opens the page, which makes a key and signs in.
	link := w.link("phone")
	phone := w.browser(exe)
	phone.run("open the link", chromedp.Navigate(link))
	phone.wait("the session", `document.getElementById("status").dataset.state === "live"`)
	me := phone.text("#me")
	if !regexp.MustCompile(`^alice/phone/web-[0-9a-f]{8}$`).MatchString(me) {
		t.Fatalf("page shows %q as its session", me)
	}
	var secure bool
	phone.eval(`window.isSecureContext && location.hostname === "`+webHost+`" && location.hash === ""`, &secure)
	if !secure {
		t.Fatalf("the page is not a secure context on %s, or kept the token in its address", webHost)
	}
	if list := ok(t, w.laptop, "machine", "list"); !regexp.MustCompile(`(?m)^phone\tSHA256:`).MatchString(list) {
		t.Fatalf("machine list after enrollment:\n%s", list)
	}
	if who := ok(t, w.laptop, "who"); !strings.Contains(who, me) {
		t.Fatalf("who does not list the browser session %s:\n%s", me, who)
	}

	// A second opening of the link, in another browser, enrolls nothing.
	other := w.browser(exe)
	other.run("open the link again", chromedp.Navigate(link))
	other.wait("the refusal", `document.getElementById("notice").textContent.includes("unknown, used or expired")`)
	if vis := other.text("#welcome h2"); vis == "" {
		t.Fatal("second browser does not show the enrollment help")
	}
	if list := ok(t, w.laptop, "machine", "list"); strings.Count(list, "\n") != 2 {
		t.Fatalf("machine list after the second opening:\n%s", list)
	}

	// The channel opens on the newest page; older ones load on demand,
	// with nothing missing or repeated.
	phone.wait("the newest page", `document.querySelectorAll("#messages .msg").length === 100`)
	phone.run("load older", chromedp.Click(chromedp.ID("older")))
	phone.wait("the older page", `document.querySelectorAll("#messages .msg").length === 150`)
	seqs := phone.seqs()
	checkOrdered(t, seqs)
	if first := phone.text("#messages .msg .body"); !strings.Contains(first, "old message 000") {
		t.Fatalf("oldest message shown is %q", first)
	}

	// A CLI send appears in the page.
	ok(t, w.laptop, "send", "--channel", "ops", "hello from the **CLI**")
	phone.wait("the CLI's post", hasMessage("hello from the CLI"))
	var bold string
	phone.eval(`Array.from(document.querySelectorAll("#messages .msg .body strong")).map(e => e.textContent).join()`, &bold)
	if bold != "CLI" {
		t.Fatalf("markdown strong = %q", bold)
	}

	// A post from the page reaches conclave tail; so does a whisper.
	tail := start(t, w.laptop, false, "tail", "--channel", "ops", "--as", "t1")
	tail.expectStderr(`^tailing #ops as alice/laptop/t1`)
	phone.run("post from the page",
		chromedp.Focus(chromedp.ID("input")),
		chromedp.SendKeys(chromedp.ID("input"), "hello from the page"),
		chromedp.SendKeys(chromedp.ID("input"), kb.Enter))
	tail.expect(`^\[ops\] ` + regexp.QuoteMeta(me) + `: hello from the page$`)
	phone.wait("the presence list", `!!document.querySelector('#presence li[data-path="alice/laptop/t1"] button')`)
	phone.run("pick the whisper target", chromedp.Click(chromedp.CSS(`#presence li[data-path="alice/laptop/t1"] button`)))
	phone.wait("the whisper bar", `!document.getElementById("whisper-to").hidden && document.getElementById("whisper-target").textContent === "alice/laptop/t1"`)
	phone.run("whisper from the page", chromedp.SendKeys(chromedp.ID("input"), "psst from the page"+kb.Enter))
	// The page's session as it is now: it may have reconnected (as
	// web-<new id>) since its post.
	if now := phone.text("#me"); now != me {
		t.Logf("the page's session changed from %s to %s", me, now)
		me = now
	}
	tail.expect(`^\[whisper\] ` + regexp.QuoteMeta(me) + `: psst from the page$`)
	ok(t, w.laptop, "whisper", me, "psst from the CLI")
	phone.run("open whispers", chromedp.Click(chromedp.ID("whispers-tab")))
	phone.wait("the CLI's whisper", hasMessage("psst from the CLI"))

	// Hostile Markdown renders inert.
	phone.run("back to ops", chromedp.Click(chromedp.CSS(`[data-channel="ops"]`)))
	xss := strings.Join([]string{
		`<img src=x onerror="window.__xss=1">`,
		`[click](javascript:window.__xss=2) and [data](data:text/html,<script>window.__xss=3</script>)`,
		`</script><script>window.__xss=4</script>`,
		"```html\n<script>window.__xss=5</script><img src=x onerror=window.__xss=6>\n```",
		`<a href="javascript:window.__xss=7">raw</a> <svg onload=window.__xss=8> [ok](https://example.org/x)`,
		`xss-set-end`,
	}, "\n\n")
	ok(t, w.laptop, "send", "--channel", "ops", xss)
	phone.wait("the XSS set", hasMessage("xss-set-end"))
	var verdict struct {
		Xss     any      `json:"xss"`
		Bad     int      `json:"bad"`
		Hrefs   []string `json:"hrefs"`
		Rels    []string `json:"rels"`
		Code    string   `json:"code"`
		HasText bool     `json:"hasText"`
	}
	phone.eval(`(() => {
		const box = document.getElementById("messages");
		const last = Array.from(box.querySelectorAll(".msg .body")).find(e => e.textContent.includes("xss-set-end"));
		return {
			xss: window.__xss ?? null,
			bad: box.querySelectorAll("img, script, svg, iframe, object, embed, [onerror], [onload]").length,
			hrefs: Array.from(last.querySelectorAll("a"), a => a.getAttribute("href")),
			rels: Array.from(last.querySelectorAll("a"), a => a.rel),
			code: last.querySelector("pre code")?.textContent ?? "",
			hasText: last.textContent.includes('<img src=x onerror="window.__xss=1">') && last.textContent.includes("javascript:window.__xss=2"),
		};
	})()`, &verdict)
	if verdict.Xss != nil || verdict.Bad != 0 || !verdict.HasText {
		t.Fatalf("XSS set not inert: %+v", verdict)
	}
	if len(verdict.Hrefs) != 1 || verdict.Hrefs[0] != "https://example.org/x" || verdict.Rels[0] != "noopener noreferrer nofollow" {
		t.Fatalf("links in the XSS set: %v %v", verdict.Hrefs, verdict.Rels)
	}
	if !strings.Contains(verdict.Code, "<script>window.__xss=5</script>") {
		t.Fatalf("code fence shows %q", verdict.Code)
	}

	// Scrollback across a reload: the same messages, once each.
	before := phone.seqs()
	phone.run("reload", chromedp.Reload())
	phone.wait("the session after reload", `document.getElementById("status").dataset.state === "live"`)
	phone.wait("the history after reload", hasMessage("xss-set-end"))
	phone.wait("the older pages", `(document.getElementById("older")?.click(), document.querySelectorAll("#messages .msg").length >= `+fmt.Sprint(len(before))+`)`)
	after := phone.seqs()
	checkOrdered(t, after)
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("after reload %d messages, before %d", len(after), len(before))
	}
	phone.noErrors()

	// Approvals: the phone is made an approver machine; a second browser,
	// enrolled as "tablet", is not. A request from an agent's bridge shows
	// in the phone's inbox only, and the phone's click reaches the bridge.
	ok(t, w.laptop, "machine", "approver", "add", "phone")
	other.run("enroll the tablet", chromedp.Navigate(w.link("tablet")))
	other.wait("the tablet's session", `document.getElementById("status").dataset.state === "live"`)
	agent := w.rawSession("agent1", protocol.RoleBridge)
	agent.request(&protocol.Frame{Type: protocol.TPermissionRequest, RequestID: "abcde", ToolName: "Bash",
		Description: "Run the shell command: rm -rf build", InputPreview: `{"command":"rm -rf build"}`})
	phone.run("open approvals", chromedp.Click(chromedp.ID("approvals-tab")))
	phone.wait("the request", `!!document.querySelector('#messages .approval[data-request-id="abcde"] button.allow')`)
	if card := phone.text(`#messages .approval[data-request-id="abcde"]`); !strings.Contains(card, "Bash") ||
		!strings.Contains(card, "rm -rf build") || !strings.Contains(card, `{"command":"rm -rf build"}`) || !strings.Contains(card, "alice/laptop/agent1") {
		t.Fatalf("approval card shows %q", card)
	}
	other.run("open approvals on the tablet", chromedp.Click(chromedp.ID("approvals-tab")))
	other.wait("the refusal", `!!document.getElementById("approvals-refused")`)
	if why := other.text("#approvals-refused"); !strings.Contains(why, "not an approver machine") {
		t.Fatalf("non-approver browser shows %q", why)
	}
	var cards int
	other.eval(`document.querySelectorAll("#messages .approval").length`, &cards)
	if cards != 0 {
		t.Fatal("a non-approver browser shows the request")
	}
	// Were it to answer anyway — its own key, through the page's own
	// protocol code, in a second session — the server refuses the verdict.
	ctx, cancel := context.WithTimeout(other.ctx, 30*time.Second)
	refusal, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(async () => {
		const { Conn, loadIdentity } = await import("./proto.js");
		const c = new Conn({ onFrame() {}, onClose() {} });
		await c.open(await loadIdentity(), "web-verdict");
		try {
			await c.request({ type: "permission_verdict", request_id: "abcde", behavior: "allow", target: "alice/laptop/agent1" });
			return "accepted";
		} catch (e) {
			return e.code + ": " + e.message;
		} finally {
			c.close();
		}
	})()`, chromedp.EvalAwaitPromise))
	cancel()
	if err != nil || !strings.HasPrefix(refusal, "unauthorized: ") || !strings.Contains(refusal, "not an approver machine") {
		t.Fatalf("a verdict from the non-approver browser: %q (%v)", refusal, err)
	}
	phone.run("allow", chromedp.Click(chromedp.CSS(`#messages .approval[data-request-id="abcde"] button.allow`)))
	v := agent.next(protocol.TPermissionVerdict)
	if v.RequestID != "abcde" || v.Behavior != "allow" || !strings.HasPrefix(v.From, "alice/phone/web-") {
		t.Fatalf("verdict at the bridge: %+v", v)
	}
	phone.wait("the inbox to empty", `!document.querySelector("#messages .approval")`)
	other.noErrors()

	if dir := os.Getenv("CONCLAVE_SCREENSHOTS"); dir != "" {
		agent.request(&protocol.Frame{Type: protocol.TPermissionRequest, RequestID: "fghij", ToolName: "Edit",
			Description: "Edit web/assets/app.js", InputPreview: `{"file_path":"web/assets/app.js","old_string":"PAGE = 100"}`})
		phone.wait("the second request", `!!document.querySelector('#messages .approval[data-request-id="fghij"]')`)
		shot(t, phone, dir, "web-approvals.png", 1280, 600, false)
		phone.run("back to ops", chromedp.Click(chromedp.CSS(`[data-channel="ops"]`)))
		phone.wait("ops", hasMessage("xss-set-end"))
		screenshots(t, phone, dir)
	}

	// Removing the browser's machine ends its session at once.
	ok(t, w.laptop, "machine", "remove", "phone")
	phone.wait("the revocation", `document.getElementById("status").dataset.state === "revoked"`)
	if who := ok(t, w.laptop, "who"); strings.Contains(who, "alice/phone/") {
		t.Fatalf("who still lists the browser:\n%s", who)
	}
	tail.stop(os.Interrupt)
}

// screenshots writes the main views into dir (docs/ for the README).
func screenshots(t *testing.T, b *browser, dir string) {
	t.Helper()
	shot(t, b, dir, "web-desktop.png", 1280, 800, false)
	shot(t, b, dir, "web-desktop-dark.png", 1280, 800, true)
	shot(t, b, dir, "web-phone.png", 375, 740, false)
	b.run("restore", chromedp.EmulateViewport(1280, 860), chromedp.Evaluate[chromedp.Void](`delete document.documentElement.dataset.theme`))
}

// shot writes one screenshot of the page at width×height.
func shot(t *testing.T, b *browser, dir, name string, width, height int64, dark bool) {
	t.Helper()
	theme := "light"
	if dark {
		theme = "dark"
	}
	b.run("prepare "+name,
		chromedp.EmulateViewport(width, height),
		chromedp.Evaluate[chromedp.Void](`(() => { document.documentElement.dataset.theme = "`+theme+`"; document.getElementById("notice").hidden = true; const m = document.getElementById("messages"); m.scrollTop = m.scrollHeight })()`))
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), buf, 0o644); err != nil {
		t.Fatal(err)
	}
}
