package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"

	"github.com/conclave/conclave/protocol"
	"github.com/conclave/conclave/web"
)

// TestWebMeasure prints the numbers of docs/PERFORMANCE.md §8: page
// weight and the time headless Chromium takes to render a channel of 1 000
// messages (the server's memory per browser session is
// TestWebSessionMemory's). It measures and
// asserts nothing about speed; it runs only with CONCLAVE_MEASURE=1 and
// CONCLAVE_BROWSER set:
//
//	CONCLAVE_MEASURE=1 CONCLAVE_BROWSER=/usr/bin/chromium go test -run TestWebMeasure -v ./cmd/conclave
func TestWebMeasure(t *testing.T) {
	if os.Getenv("CONCLAVE_MEASURE") == "" {
		t.Skip("a measurement: set CONCLAVE_MEASURE=1 (and CONCLAVE_BROWSER) to run it")
	}
	exe := browserPath(t)

	raw, gz := 0, 0
	for _, a := range web.Assets() {
		t.Logf("asset %-12s %6d bytes, %5d gzipped", a.Name, a.Bytes, a.Gzipped)
		raw += a.Bytes
		gz += a.Gzipped
	}
	t.Logf("page weight: %d bytes, %d gzipped (all assets)", raw, gz)

	w := newWebWorld(t)
	ok(t, w.laptop, "channel", "create", "ops")
	p := w.bulk("bulk")
	p.request(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	bodies := make([]string, 1000)
	for i := range bodies {
		bodies[i] = fmt.Sprintf("message %d: the **build** of `web/assets` passed; see https://example.org/run/%d\n- step one\n- step two", i, i)
	}
	p.postMany("ops", bodies)

	b := w.browser(exe)
	b.run("enroll", chromedp.Navigate(w.link("phone")))
	b.wait("the first page", `document.querySelectorAll("#messages .msg").length === 100`)
	var sinceNav float64
	b.eval(`performance.now()`, &sinceNav)
	t.Logf("navigation to the newest 100 messages shown (enrollment included): %.0f ms", sinceNav)
	for n := 200; n <= 1000; n += 100 {
		b.run("older", chromedp.Click(chromedp.ID("older")))
		b.wait("older page", fmt.Sprintf(`document.querySelectorAll("#messages .msg").length === %d`, n))
	}
	ok(t, w.laptop, "channel", "create", "other")
	b.run("reload for the channel list", chromedp.Reload())
	b.wait("live", `document.getElementById("status").dataset.state === "live"`)
	b.wait("page", `document.querySelectorAll("#messages .msg").length >= 100`)
	for n := 200; n <= 1000; n += 100 {
		b.run("older", chromedp.Click(chromedp.ID("older")))
		b.wait("older page", fmt.Sprintf(`document.querySelectorAll("#messages .msg").length === %d`, n))
	}
	var times []float64
	for i := 0; i < 7; i++ {
		b.run("away", chromedp.Click(chromedp.CSS(`[data-channel="other"]`)))
		b.wait("other", `document.getElementById("view-title").textContent === "# other"`)
		var ms float64
		b.eval(`(() => {
			const t0 = performance.now();
			document.querySelector('[data-channel="ops"]').click(); // renders synchronously: the channel is joined and loaded
			const n = document.querySelectorAll("#messages .msg").length;
			void document.getElementById("messages").scrollHeight; // force layout
			if (n !== 1000) throw new Error("rendered " + n);
			return performance.now() - t0;
		})()`, &ms)
		times = append(times, ms)
	}
	sort.Float64s(times)
	t.Logf("render a channel of 1000 messages (DOM + layout): median %.1f ms, min %.1f, max %.1f over %d runs", times[len(times)/2], times[0], times[len(times)-1], len(times))
}

// TestWebSessionMemory prints the server's memory per browser session
// (docs/PERFORMANCE.md §8). A tab is replaced by a Go client that speaks
// exactly the page's protocol: the `Origin` of the public URL and the
// conclave.v1 subprotocol, `hello` as conclave-web/1, `auth` signed with
// the key of an enrolled browser machine, then what app.js asks at start
// (permission_list, list_channels, join, the newest history page,
// who, acl_list, invite_list, ban_list), then idle with its reader
// draining, as a tab does. N such sessions (CONCLAVE_MEASURE_SESSIONS,
// default 500) are opened on a server with TLS (the browser connects
// straight to it) and on one without (behind a TLS proxy); the server's
// RSS, heap and stacks are read from /metrics before and after, each time
// once the server has run a garbage collection (up to two minutes each).
// It asserts nothing about memory; it runs only with CONCLAVE_MEASURE=1:
//
//	CONCLAVE_MEASURE=1 go test -count=1 -timeout 30m -run TestWebSessionMemory -v ./cmd/conclave
func TestWebSessionMemory(t *testing.T) {
	if os.Getenv("CONCLAVE_MEASURE") == "" {
		t.Skip("a measurement: set CONCLAVE_MEASURE=1 to run it")
	}
	n := 500
	if v := os.Getenv("CONCLAVE_MEASURE_SESSIONS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("CONCLAVE_MEASURE_SESSIONS=%q: want a positive number", v)
		}
	}
	t.Run("tls", func(t *testing.T) { measureWebSessions(t, n, true, "") })
	t.Run("plain", func(t *testing.T) { measureWebSessions(t, n, false, "") })
	if exe := os.Getenv("CONCLAVE_BROWSER"); exe != "" {
		tabs := 10
		if v := os.Getenv("CONCLAVE_MEASURE_TABS"); v != "" {
			var err error
			if tabs, err = strconv.Atoi(v); err != nil || tabs < 1 {
				t.Fatalf("CONCLAVE_MEASURE_TABS=%q: want a positive number", v)
			}
		}
		t.Run("chromium-tabs", func(t *testing.T) { measureWebSessions(t, tabs, true, exe) })
	}
}

// measureWebSessions opens n sessions of one browser machine on a new
// server, with or without TLS, and logs the server's memory per session.
// With exe, the sessions are tabs of that headless Chromium; without, Go
// clients that speak the page's protocol.
func measureWebSessions(t *testing.T, n int, tlsOn bool, exe string) {
	dir := t.TempDir()
	w := &webWorld{t: t, pki: newTestPKI(t, dir)}
	port := freePort(t)
	w.public = fmt.Sprintf("https://%s:%d", webHost, port)
	args := []string{"serve", "--bind", fmt.Sprintf("127.0.0.1:%d", port), "--ephemeral", "--rate-limit", "0", "--public-url", w.public}
	scheme := "ws"
	if tlsOn {
		scheme = "wss"
		args = append(args, "--tls-cert", w.pki.certFile, "--tls-key", w.pki.keyFile)
	}
	w.url = fmt.Sprintf("%s://127.0.0.1:%d", scheme, port)
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
	ok(t, w.laptop, "channel", "create", "ops")
	p := w.bulk("bulk")
	p.request(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	bodies := make([]string, 150)
	for i := range bodies {
		bodies[i] = fmt.Sprintf("message %d: the **build** of `web/assets` passed; see https://example.org/run/%d", i, i)
	}
	p.postMany("ops", bodies)

	// One browser machine, enrolled through a link as the page does; its
	// tabs are the sessions measured.
	var link struct{ URL string }
	if err := json.Unmarshal([]byte(ok(t, w.laptop, "web", "--name", "browser", "--json")), &link); err != nil {
		t.Fatal(err)
	}
	token := link.URL[strings.Index(link.URL, "#enroll=")+len("#enroll="):]
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: w.pki.pool, ServerName: webHost}}}
	metrics := strings.Replace(strings.Replace(w.url, "wss://", "https://", 1), "ws://", "http://", 1) + "/metrics"
	scrape := func() map[string]float64 {
		resp, err := hc.Get(metrics)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		out := map[string]float64{}
		for _, m := range []string{"process_resident_memory_bytes", "go_memstats_heap_alloc_bytes", "go_memstats_stack_inuse_bytes", "go_goroutines", "go_gc_duration_seconds_count"} {
			f := regexp.MustCompile(`(?m)^` + m + ` (\S+)$`).FindSubmatch(body)
			if f == nil {
				t.Fatalf("no %s in /metrics", m)
			}
			out[m], _ = strconv.ParseFloat(string(f[1]), 64)
		}
		return out
	}

	var (
		wg    sync.WaitGroup
		conns []*websocket.Conn
	)
	t.Cleanup(func() {
		for _, c := range conns {
			c.CloseNow()
		}
		wg.Wait()
	})
	var chromium *browser // with exe, the browser whose tabs are the sessions
	open := func(i int) {
		if exe != "" {
			openTab(t, w, &chromium, exe, link.URL, i)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		conn, _, err := websocket.Dial(ctx, w.url, &websocket.DialOptions{HTTPClient: hc,
			Subprotocols: []string{protocol.Subprotocol}, HTTPHeader: http.Header{"Origin": {w.public}}})
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		conn.SetReadLimit(64 << 20)
		conns = append(conns, conn)
		s := &bulkSession{t: t, conn: conn}
		handle := fmt.Sprintf("web-%08x", i)
		s.send(&protocol.Frame{Type: protocol.THello, Version: 1, Session: handle, Client: "conclave-web/1"})
		ch := s.read()
		if i == 0 {
			s.send(&protocol.Frame{Type: protocol.TEnroll, Token: token, Pubkey: key.Public().(ed25519.PublicKey)})
		}
		s.send(&protocol.Frame{Type: protocol.TAuth, Pubkey: key.Public().(ed25519.PublicKey), Signature: protocol.SignAuth(key, ch.ServerID, ch.Nonce, handle)})
		if f := s.next(protocol.TEstablished); f.Path != "alice/browser/"+handle {
			t.Fatalf("session %d established as %q", i, f.Path)
		}
		s.send(&protocol.Frame{Type: protocol.TPermissionList, ID: "p"}) // refused: not an approver machine
		var zero uint64
		for _, f := range []*protocol.Frame{
			{Type: protocol.TListChannels},
			{Type: protocol.TJoin, Channel: "ops"},
			{Type: protocol.TReadSince, Channel: "ops", BeforeSeq: &zero, Limit: 100},
			{Type: protocol.TWho, Channel: "ops"},
			{Type: protocol.TACLList, Channel: "ops"},
			{Type: protocol.TInviteList, Channel: "ops"},
			{Type: protocol.TBanList, Channel: "ops"},
		} {
			s.request(f)
		}
		wg.Add(1)
		go func() { // the tab's reader: drains deliveries until the end
			defer wg.Done()
			for {
				if _, _, err := conn.Read(context.Background()); err != nil {
					return
				}
			}
		}()
	}
	// afterGC waits for the server's next garbage collection (the runtime
	// forces one at least every two minutes), so that the heap is what is
	// live and the stacks have been shrunk to what they hold. The heap is
	// read again a few seconds later, once the collector has swept what it
	// found dead (until then the dead objects still count), and the lower
	// reading is kept.
	afterGC := func() map[string]float64 {
		n0 := scrape()["go_gc_duration_seconds_count"]
		for deadline := time.Now().Add(150 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
			if m := scrape(); m["go_gc_duration_seconds_count"] > n0 {
				time.Sleep(3 * time.Second)
				if later := scrape(); later["go_memstats_heap_alloc_bytes"] < m["go_memstats_heap_alloc_bytes"] {
					m["go_memstats_heap_alloc_bytes"] = later["go_memstats_heap_alloc_bytes"]
				}
				return m
			}
		}
		t.Fatal("the server ran no garbage collection within 150 s")
		return nil
	}
	open(0) // enrolls the machine, and warms up the server's first-use allocations
	before := afterGC()
	for i := 1; i <= n; i++ {
		open(i)
	}
	after := afterGC()
	if got := strings.Count(ok(t, w.laptop, "who", "ops"), "alice/browser/web-"); got != n+1 {
		t.Fatalf("who lists %d browser sessions, want %d", got, n+1)
	}
	per := func(m string) float64 { return (after[m] - before[m]) / float64(n) / 1024 }
	kind := "browser sessions (Go clients speaking the page's protocol)"
	if exe != "" {
		kind = "headless Chromium tabs"
	}
	t.Logf("%s: %d %s: server RSS %.1f → %.1f MiB, %.1f KiB per session; after a GC, live heap %.1f KiB and stacks %.1f KiB per session; goroutines %+.0f",
		w.url[:strings.Index(w.url, ":")], n, kind, before["process_resident_memory_bytes"]/(1<<20), after["process_resident_memory_bytes"]/(1<<20),
		per("process_resident_memory_bytes"), per("go_memstats_heap_alloc_bytes"), per("go_memstats_stack_inuse_bytes"),
		after["go_goroutines"]-before["go_goroutines"])
}

// openTab opens the page in tab i of the headless Chromium *b (tab 0
// starts it and opens the enrollment link) and waits until the tab shows
// the channel's newest page.
func openTab(t *testing.T, w *webWorld, b **browser, exe, link string, i int) {
	t.Helper()
	if i == 0 {
		*b = w.browser(exe)
	}
	ctx, target := (*b).ctx, link
	if i > 0 {
		tab, cancel := chromedp.NewContext((*b).ctx)
		t.Cleanup(cancel)
		ctx, target = tab, w.public+"/web/"
	}
	tctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.Navigate(target)); err != nil {
		t.Fatalf("tab %d: %v", i, err)
	}
	for {
		n, err := chromedp.Run(tctx, chromedp.Evaluate[int](`document.querySelectorAll("#messages .msg").length`))
		if err == nil && n >= 100 {
			return
		}
		if tctx.Err() != nil {
			t.Fatalf("tab %d did not show the channel: %v", i, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
