package server

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/conclave/conclave/protocol"
	"github.com/conclave/conclave/web"
)

func get(t *testing.T, url string, hdr map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestWebPageIsServedWithStrictHeaders(t *testing.T) {
	env := newTestEnv(t, Config{Ephemeral: true})
	for _, tc := range []struct {
		path, ctype string
	}{
		{"/web/", "text/html; charset=utf-8"},
		{"/web/app.js", "text/javascript; charset=utf-8"},
		{"/web/style.css", "text/css; charset=utf-8"},
	} {
		resp := get(t, env.ts.URL+tc.path, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tc.ctype {
			t.Fatalf("GET %s: %d %q, want 200 %q", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), tc.ctype)
		}
		if got := resp.Header.Get("Content-Security-Policy"); got != web.CSP || !strings.Contains(got, "default-src 'self'") {
			t.Fatalf("GET %s: CSP %q", tc.path, got)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Set-Cookie") != "" {
			t.Fatalf("GET %s: headers %v", tc.path, resp.Header)
		}
	}
	if resp := get(t, env.ts.URL+"/web/nope.js", nil); resp.StatusCode != 404 {
		t.Fatalf("missing asset: %d", resp.StatusCode)
	}
	// The page has no inline script: every <script> names a src.
	resp := get(t, env.ts.URL+"/web/", map[string]string{"Accept-Encoding": "identity"})
	page, _ := io.ReadAll(resp.Body)
	for _, s := range strings.Split(string(page), "<script")[1:] {
		if !strings.Contains(s[:strings.Index(s, ">")], "src=") || !strings.HasPrefix(s[strings.Index(s, ">")+1:], "</script>") {
			t.Fatalf("inline script in the page: <script%s", s[:min(len(s), 80)])
		}
	}
	// gzip for browsers that take it.
	resp = get(t, env.ts.URL+"/web/app.js", map[string]string{"Accept-Encoding": "gzip"})
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("no gzip: %v", resp.Header)
	}
	etag := resp.Header.Get("ETag")
	if resp := get(t, env.ts.URL+"/web/app.js", map[string]string{"If-None-Match": etag}); resp.StatusCode != http.StatusNotModified {
		t.Fatalf("revalidation: %d", resp.StatusCode)
	}
}

func TestRootRedirectsBrowsersOnly(t *testing.T) {
	env := newTestEnv(t, Config{Ephemeral: true})
	resp := get(t, env.ts.URL+"/", map[string]string{"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "web/" { // relative: right behind a path prefix too
		t.Fatalf("browser GET /: %d %q, want 302 web/", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp = get(t, env.ts.URL+"/", nil)
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("plain GET /: %d, want 426", resp.StatusCode)
	}
}

func dialOrigin(t *testing.T, env *testEnv, origin string) (*http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	conn, resp, err := websocket.Dial(ctx, env.url, &websocket.DialOptions{HTTPHeader: h})
	if err == nil {
		conn.CloseNow()
	}
	return resp, err
}

func TestUpgradeOriginCheck(t *testing.T) {
	env := newTestEnv(t, Config{Ephemeral: true})
	host := strings.TrimPrefix(env.ts.URL, "http://")
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"", true}, // the CLI and the bridge send none
		{"http://" + host, true},
		{"https://" + host, true},
		{"https://evil.example", false},
		{"null", false},
	} {
		resp, err := dialOrigin(t, env, tc.origin)
		if tc.ok != (err == nil) {
			t.Fatalf("origin %q: err %v, want ok=%v", tc.origin, err, tc.ok)
		}
		if !tc.ok && resp.StatusCode != http.StatusForbidden {
			t.Fatalf("origin %q: status %d, want 403", tc.origin, resp.StatusCode)
		}
	}

	pub := newTestEnv(t, Config{Ephemeral: true, PublicURL: "https://chat.example.org/"})
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{"https://chat.example.org", true},
		{"https://CHAT.example.org", true},
		{"http://chat.example.org", false}, // the scheme counts too
		{"http://" + strings.TrimPrefix(pub.ts.URL, "http://"), false},
	} {
		if _, err := dialOrigin(t, pub, tc.origin); tc.ok != (err == nil) {
			t.Fatalf("public URL, origin %q: err %v, want ok=%v", tc.origin, err, tc.ok)
		}
	}
}

func TestPublicURLIsValidated(t *testing.T) {
	for _, bad := range []string{"chat.example.org", "ftp://x", "https://", "https://u:p@x", "https://x/?a=1", "https://x/#f"} {
		_, err := New(Config{Ephemeral: true, PublicURL: bad})
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != "PublicURL" {
			t.Errorf("public URL %q: got %v, want a ConfigError for PublicURL", bad, err)
			continue
		}
		// The library names its own field; flags are the CLI's to name.
		if msg := err.Error(); !strings.HasPrefix(msg, "server: Config.PublicURL ") || strings.Contains(msg, "--") {
			t.Errorf("public URL %q: error %q, want it to name Config.PublicURL and no flag", bad, msg)
		}
	}
}

// enroll runs a browser's first login: hello, challenge, enroll, auth.
func (e *testEnv) enroll(key ed25519.PrivateKey, token, session string) (*client, *protocol.Frame) {
	e.t.Helper()
	c := e.dialRaw()
	c.key = key
	c.sendFrame(&protocol.Frame{Type: protocol.THello, Version: 1, Session: session})
	ch := c.next()
	pub := key.Public().(ed25519.PublicKey)
	c.sendFrame(&protocol.Frame{Type: protocol.TEnroll, Token: token, Pubkey: pub})
	b, _ := json.Marshal(&protocol.Frame{Type: protocol.TAuth, Pubkey: pub, Signature: protocol.SignAuth(key, ch.ServerID, ch.Nonce, session)})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	c.conn.Write(ctx, websocket.MessageText, b) // may fail: the server can refuse the enroll frame first
	cancel()
	f := c.next()
	if f.Type == protocol.TEstablished {
		c.path = f.Path
	}
	return c, f
}

func TestEnrollmentLinkWorksOnce(t *testing.T) {
	env := newTestEnv(t, Config{Admins: []Admin{{User: "alice"}}}) // admin: to read the audit log
	alice := env.register("alice", "laptop", "main")
	r := alice.ok(&protocol.Frame{Type: protocol.TEnrollLink, Machine: "phone"})
	if r.Type != protocol.TEnrollToken || r.Token == "" || r.Machine != "phone" || r.ExpiresAt == nil || r.URL != "" {
		t.Fatalf("enroll_link reply %+v", r)
	}
	exp, err := time.Parse(time.RFC3339, *r.ExpiresAt)
	if err != nil || exp.Before(time.Now()) || exp.After(time.Now().Add(EnrollTTL+time.Minute)) {
		t.Fatalf("expires_at %q", *r.ExpiresAt)
	}

	browser := newKey(t)
	b, f := env.enroll(browser, r.Token, "web-1")
	if f.Type != protocol.TEstablished || f.Path != "alice/phone/web-1" {
		t.Fatalf("enroll: %+v", f)
	}
	ms := alice.ok(&protocol.Frame{Type: protocol.TListMachines})
	if len(ms.Machines) != 2 || ms.Machines[1].Name != "phone" || !ed25519.PublicKey(ms.Machines[1].Pubkey).Equal(browser.Public()) {
		t.Fatalf("machines after enrollment: %+v", ms.Machines)
	}
	// The log records the enrollment, as done by the session that asked.
	ev := alice.ok(&protocol.Frame{Type: protocol.TAudit, EventType: "machine_added"})
	if len(ev.Events) != 1 || ev.Events[0].Actor != "alice/laptop/main" || !strings.Contains(string(ev.Events[0].Data), `"machine":"phone"`) {
		t.Fatalf("audit: %+v", ev.Events)
	}
	// The browser logs in again with its key alone.
	b.conn.CloseNow()
	env.login(browser, "web-2")

	// A second opening of the link enrolls nothing, for any key.
	_, f = env.enroll(newKey(t), r.Token, "web-3")
	if f.Type != protocol.TError || f.Code != protocol.CodeUnauthorized || !strings.Contains(f.Message, "unknown, used or expired") {
		t.Fatalf("second use: %+v", f)
	}
	if ms := alice.ok(&protocol.Frame{Type: protocol.TListMachines}); len(ms.Machines) != 2 {
		t.Fatalf("machines after the second use: %+v", ms.Machines)
	}
	// A made-up token reads the same.
	if _, f = env.enroll(newKey(t), "made-up", "web-4"); f.Type != protocol.TError || f.Message != errLinkGone.Message {
		t.Fatalf("made-up token: %+v", f)
	}
	// A name in use is refused when the link is asked for.
	alice.fail(&protocol.Frame{Type: protocol.TEnrollLink, Machine: "phone"}, protocol.CodeConflict)
	// Removing the browser's machine drops its session.
	web := env.login(browser, "web-5")
	alice.ok(&protocol.Frame{Type: protocol.TMachineRemove, Machine: "phone"})
	if last := web.waitClosed(); last == nil || protocol.Reason(last.Reason) != protocol.ReasonMachineGone {
		t.Fatalf("browser session after machine remove: %+v", last)
	}
}

func TestEnrollmentLinkExpires(t *testing.T) {
	env := newTestEnv(t, Config{Ephemeral: true, EnrollTTL: time.Nanosecond})
	alice := env.register("alice", "laptop", "main")
	r := alice.ok(&protocol.Frame{Type: protocol.TEnrollLink, Machine: "phone"})
	if _, f := env.enroll(newKey(t), r.Token, "web"); f.Type != protocol.TError || f.Code != protocol.CodeUnauthorized {
		t.Fatalf("expired link: %+v", f)
	}
}

func TestEnrollmentNeedsTheSignature(t *testing.T) {
	env := newTestEnv(t, Config{Ephemeral: true, PublicURL: "https://chat.example.org"})
	alice := env.register("alice", "laptop", "main")
	r := alice.ok(&protocol.Frame{Type: protocol.TEnrollLink, Machine: "phone"})
	if r.URL != "https://chat.example.org/web/#enroll="+r.Token {
		t.Fatalf("url %q", r.URL)
	}
	// An auth signed by another key than the one enrolled is refused, and
	// leaves the link usable by its rightful opener.
	c := env.dialRaw()
	c.sendFrame(&protocol.Frame{Type: protocol.THello, Version: 1, Session: "web"})
	ch := c.next()
	k1, k2 := newKey(t), newKey(t)
	c.sendFrame(&protocol.Frame{Type: protocol.TEnroll, Token: r.Token, Pubkey: k1.Public().(ed25519.PublicKey)})
	c.sendFrame(&protocol.Frame{Type: protocol.TAuth, Pubkey: k2.Public().(ed25519.PublicKey), Signature: protocol.SignAuth(k2, ch.ServerID, ch.Nonce, "web")})
	if f := c.next(); f.Type != protocol.TError || f.Code != protocol.CodeUnauthorized {
		t.Fatalf("mismatched key: %+v", f)
	}
	if _, f := env.enroll(k1, r.Token, "web"); f.Type != protocol.TEstablished {
		t.Fatalf("rightful enrollment after a refused one: %+v", f)
	}
}

func TestEnrollmentLinksAreBounded(t *testing.T) {
	env := newTestEnv(t, Config{Ephemeral: true})
	alice := env.register("alice", "laptop", "main")
	for i := 0; i < maxLinksPerUser; i++ {
		alice.ok(&protocol.Frame{Type: protocol.TEnrollLink, Machine: fmt.Sprint("m", i)})
	}
	alice.fail(&protocol.Frame{Type: protocol.TEnrollLink, Machine: "one-more"}, protocol.CodeRateLimited)
}

func TestHistoryNewestPagesBackwards(t *testing.T) {
	env := newTestEnv(t, Config{})
	a := env.register("aaron", "wa", "s")
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "dev"})
	a.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	a.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "dev"})
	for i := 0; i < 25; i++ {
		a.ok(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: body(fmt.Sprint("o", i))})
		a.ok(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "dev", Body: body(fmt.Sprint("d", i))})
	}
	var got []string
	before := uint64(0) // 0: the newest page
	for pages := 0; ; pages++ {
		h := a.ok(&protocol.Frame{Type: protocol.TReadSince, Channel: "ops", BeforeSeq: &before, Limit: 7})
		got = append(bodies(h), got...)
		if !h.More {
			if pages != 3 {
				t.Fatalf("%d pages", pages+1)
			}
			break
		}
		if h.NextSeq != h.Messages[0].Seq {
			t.Fatalf("next_seq %d, oldest %d", h.NextSeq, h.Messages[0].Seq)
		}
		before = h.NextSeq
	}
	var want []string
	for i := 0; i < 25; i++ {
		want = append(want, fmt.Sprint("o", i))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("paged back: %v, want %v", got, want)
	}
	a.fail(&protocol.Frame{Type: protocol.TReadSince, Channel: "ops", BeforeSeq: &before, AfterSeq: &before}, protocol.CodeMalformed)
}

// TestHistoryNewestPageMeetsTheLiveEdge: a reader that joins while posts
// stream in and then asks for the newest page gets, from the page and the
// live deliveries together, every post exactly once.
func TestHistoryNewestPageMeetsTheLiveEdge(t *testing.T) {
	env := newTestEnv(t, Config{})
	w := env.register("writer", "m", "s")
	w.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	w.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	const n = 400
	for i := 0; i < n; i++ { // pipelined: acks are not awaited
		w.sendFrame(&protocol.Frame{Type: protocol.TChannelMsg, ID: fmt.Sprint("p", i), Channel: "ops", Body: body(fmt.Sprint(i))})
		if i == n/2 {
			break
		}
	}
	r := env.register("reader", "m", "s")
	r.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	go func() {
		for i := n/2 + 1; i < n; i++ {
			w.sendFrame(&protocol.Frame{Type: protocol.TChannelMsg, ID: fmt.Sprint("p", i), Channel: "ops", Body: body(fmt.Sprint(i))})
		}
	}()
	seen := map[string]int{}
	zero := uint64(0)
	r.sendFrame(&protocol.Frame{Type: protocol.TReadSince, ID: "h", Channel: "ops", BeforeSeq: &zero})
	var h *protocol.Frame
	for h == nil {
		switch f := r.next(); f.Type {
		case protocol.THistory:
			h = f
		case protocol.TChannelMsg: // delivered while the page was asked for
			seen[*f.Body]++
		default:
			t.Fatalf("unexpected %+v", f)
		}
	}
	for _, m := range h.Messages {
		seen[*m.Body]++
	}
	for len(seen) < n {
		select {
		case f := <-r.frames:
			if f.Type == protocol.TChannelMsg {
				seen[*f.Body]++
			}
			continue
		case <-time.After(5 * time.Second):
		}
		var miss []int
		for i := 0; i < n; i++ {
			if seen[fmt.Sprint(i)] == 0 {
				miss = append(miss, i)
			}
		}
		t.Fatalf("missing %v; page %d..%d", miss, h.Messages[0].Seq, h.Messages[len(h.Messages)-1].Seq)
	}
	for i := 0; i < n; i++ {
		if seen[fmt.Sprint(i)] < 1 {
			t.Fatalf("post %d missing", i)
		}
	}
	// Duplicates across the edge are possible (a post both in the page and
	// delivered); clients drop them by seq, which is what makes the merge
	// exact. Nothing is missing, which is what the server must guarantee.
}
