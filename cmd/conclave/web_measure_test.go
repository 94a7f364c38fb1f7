package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/conclave/conclave/protocol"
	"github.com/conclave/conclave/web"
)

// TestWebMeasure prints the numbers of docs/PERFORMANCE.md §9: page
// weight, the time headless Chromium takes to render a channel of 1 000
// messages, and the server's memory per browser session. It measures and
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

	// Server memory per browser session: tabs of the same enrolled
	// browser, each a session that joins #ops and reads the newest page.
	rss := func() float64 {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: w.pki.pool}}}
		resp, err := hc.Get(strings.Replace(w.url, "wss://", "https://", 1) + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		m := regexp.MustCompile(`(?m)^process_resident_memory_bytes (\S+)$`).FindSubmatch(body)
		if m == nil {
			t.Fatalf("no RSS in /metrics")
		}
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		return v
	}
	const tabs = 20
	before := rss()
	for i := 0; i < tabs; i++ {
		tab, cancel := chromedp.NewContext(b.ctx)
		defer cancel()
		ctx, cancelT := context.WithTimeout(tab, 60*time.Second)
		if err := chromedp.Do(ctx, chromedp.Navigate(w.public+"/web/")); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#messages .msg").length`))
			if err == nil && n >= 100 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("tab %d did not load", i)
			}
			time.Sleep(100 * time.Millisecond)
		}
		cancelT()
	}
	time.Sleep(time.Second)
	after := rss()
	who := ok(t, w.laptop, "who")
	t.Logf("server RSS %.1f MiB before, %.1f MiB after %d more browser sessions (%d sessions live): %.1f KiB per browser session",
		before/(1<<20), after/(1<<20), tabs, strings.Count(who, "alice/phone/web-"), (after-before)/tabs/1024)
}
