package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// connectProxy starts an HTTP CONNECT proxy on loopback that sends webHost
// to 127.0.0.1 (any other host is refused) and returns its URL. A CLI run
// with HTTPS_PROXY set to it reaches the server by its public name, as
// Chromium does with its resolver rules, so that the lines the page prints
// (`conclave join … --server wss://chat.conclave.test:…`) can be run as
// they are. TLS stays end to end: the proxy only copies bytes.
func connectProxy(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
		wg     sync.WaitGroup
	)
	// track keeps c to be closed at the end; false if the end has come.
	track := func(c net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			c.Close()
			return false
		}
		conns = append(conns, c)
		return true
	}
	serve := func(down net.Conn) {
		defer down.Close()
		br := bufio.NewReader(down)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		host, port, err := net.SplitHostPort(req.Host)
		if req.Method != http.MethodConnect || err != nil || host != webHost {
			io.WriteString(down, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
			return
		}
		up, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
		if err != nil {
			io.WriteString(down, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
			return
		}
		if !track(up) {
			return
		}
		defer up.Close()
		if _, err := io.WriteString(down, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
			return
		}
		done := make(chan struct{})
		go func() { // server to client; ends when either side is closed
			defer close(done)
			io.Copy(down, up)
			down.Close()
		}()
		io.Copy(up, br) // client to server, starting with what br holds
		up.Close()
		<-done
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !track(c) {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "http://" + ln.Addr().String()
}

// publicUser registers user from a new config dir, against the server's
// public URL through proxy, and returns the CLI environment.
func (w *webWorld) publicUser(proxy, user, machine string) []string {
	w.t.Helper()
	env := append(w.env(user+"-"+machine), "HTTPS_PROXY="+proxy, "https_proxy=", "NO_PROXY=", "no_proxy=")
	ok(w.t, env, "key")
	ok(w.t, env, "register", user, "--server", w.wss(), "--machine", machine)
	return env
}

// wss is the server's public URL as the CLI spells it.
func (w *webWorld) wss() string { return strings.Replace(w.public, "https://", "wss://", 1) }

// linkFor runs `conclave web` with env and returns the enrollment link.
func (w *webWorld) linkFor(env []string, name string) string {
	w.t.Helper()
	var r struct{ URL, Machine string }
	out := ok(w.t, env, "web", "--name", name, "--json")
	if err := json.Unmarshal([]byte(out), &r); err != nil || !strings.HasPrefix(r.URL, w.public+"/web/#enroll=") || r.Machine != name {
		w.t.Fatalf("conclave web --json = %q (%v)", out, err)
	}
	return r.URL
}

// TestWebBrowserChannelAdmin drives the channel-admin panel of a channel
// admin's browser (bob, who is not a server admin): the access list, an
// invite whose printed `conclave join` line a new user runs as it is, a
// revoked invite that no longer admits anyone, a kick and a ban that the
// member's `conclave tail` sees. A member who is not an admin (carol) gets
// no panel and no kick buttons. The presence list follows sessions that
// join the channel.
func TestWebBrowserChannelAdmin(t *testing.T) {
	exe := browserPath(t)
	w := newWebWorld(t) // alice, the first user and server admin, on the laptop
	proxy := connectProxy(t)
	bob := w.publicUser(proxy, "bob", "desk")
	carol := w.publicUser(proxy, "carol", "box")
	dave := w.publicUser(proxy, "dave", "box")
	ok(t, bob, "channel", "create", "proj", "--visibility", "private")

	// bob's browser: the channel's admin sees the panel.
	admin := w.browser(exe)
	admin.run("enroll bob's browser", chromedp.Navigate(w.linkFor(bob, "bob-browser")))
	admin.wait("bob's session", `document.getElementById("status").dataset.state === "live"`)
	admin.wait("the panel", `document.getElementById("view-title").textContent === "# proj" && !document.getElementById("admin-box").hidden && !!document.querySelector('#acl li[data-item="bob"]')`)
	admin.run("open the panel", chromedp.Click(chromedp.CSS(`#admin-box summary`)))

	// The access list: add alice, then remove her.
	admin.run("add alice to the access list",
		chromedp.SendKeys(chromedp.ID("acl-user"), "alice"),
		chromedp.Click(chromedp.CSS(`#acl-form button[type=submit]`)))
	admin.wait("alice in the list", `!!document.querySelector('#acl li[data-item="alice"]')`)
	if out := ok(t, bob, "acl", "list", "--channel", "proj"); out != "alice\nbob\n" {
		t.Fatalf("acl list after the page added alice = %q", out)
	}
	admin.run("remove alice", chromedp.Click(chromedp.CSS(`#acl li[data-item="alice"] button`)))
	admin.wait("alice out of the list", `!document.querySelector('#acl li[data-item="alice"]')`)
	if out := ok(t, bob, "acl", "list", "--channel", "proj"); out != "bob\n" {
		t.Fatalf("acl list after the page removed alice = %q", out)
	}

	// An invite for one use: the line the page shows is run as it is by
	// carol, a new user, and admits her.
	admin.run("create an invite",
		chromedp.SendKeys(chromedp.ID("invite-uses"), "1"),
		chromedp.Click(chromedp.CSS(`#invite-form button[type=submit]`)))
	admin.wait("the join line", `!document.getElementById("invite-new").hidden && document.getElementById("invite-line").textContent.startsWith("conclave join ")`)
	line := admin.text("#invite-line")
	want := regexp.MustCompile(`^conclave join proj --token ([A-Za-z0-9_-]+) --server ` + regexp.QuoteMeta(w.wss()) + `$`)
	m := want.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("the page's join line is %q", line)
	}
	admin.wait("the invite in the list", fmt.Sprintf(`!!document.querySelector('#invites li[data-token=%q]')`, m[1]))
	admin.run("copy the line", chromedp.Click(chromedp.ID("invite-copy")))
	admin.wait("the copy", `/^(Copied|Selected)/.test(document.getElementById("notice").textContent)`)
	if out := ok(t, carol, strings.Fields(line)[1:]...); out != "✓ joined proj\n" {
		t.Fatalf("carol running the page's line: %q", out)
	}
	if out := ok(t, bob, "acl", "list", "--channel", "proj"); out != "bob\ncarol\n" {
		t.Fatalf("acl list after carol's join = %q", out)
	}

	// A second invite, revoked from the page: dave's join with it is refused.
	admin.run("create another invite",
		chromedp.Evaluate[chromedp.Void](`document.getElementById("invite-uses").value = ""`),
		chromedp.Click(chromedp.CSS(`#invite-form button[type=submit]`)))
	admin.wait("the second line", fmt.Sprintf(`document.getElementById("invite-line").textContent.startsWith("conclave join ") && !document.getElementById("invite-line").textContent.includes(%q)`, m[1]))
	line2 := admin.text("#invite-line")
	m2 := want.FindStringSubmatch(line2)
	if m2 == nil {
		t.Fatalf("the page's second join line is %q", line2)
	}
	sel := fmt.Sprintf(`#invites li[data-token=%q]`, m2[1])
	admin.wait("the second invite in the list", `!!document.querySelector('`+sel+`')`)
	admin.run("revoke it", chromedp.Click(chromedp.CSS(sel+` button`)))
	admin.wait("the invite gone", `!document.querySelector('`+sel+`')`)
	fails(t, 1, `join rejected: not_found: no such channel "proj", or the invite is invalid, used up or expired`, dave, strings.Fields(line2)[1:]...)

	// carol's browser: a member who is not an admin has no panel and no
	// kick buttons, and sees bob's browser in the presence list.
	member := w.browser(exe)
	member.run("enroll carol's browser", chromedp.Navigate(w.linkFor(carol, "carol-browser")))
	member.wait("carol's session", `document.getElementById("status").dataset.state === "live"`)
	member.wait("proj", `document.getElementById("view-title").textContent === "# proj" && !!document.querySelector('#presence li[data-path^="bob/bob-browser/web-"]')`)
	var visible struct {
		Panel bool `json:"panel"`
		Kicks int  `json:"kicks"`
	}
	member.eval(`({panel: !document.getElementById("admin-box").hidden, kicks: document.querySelectorAll("#presence button.danger").length})`, &visible)
	if visible.Panel || visible.Kicks != 0 {
		t.Fatalf("a member who is not an admin sees the admin panel or kick buttons: %+v", visible)
	}

	// A session joining appears in the admin's presence list, with a kick
	// button; the kick ends carol's tail.
	tail := start(t, carol, false, "tail", "--channel", "proj", "--as", "t1")
	tail.expectStderr(`^tailing #proj as carol/box/t1`)
	admin.wait("carol's tail in the presence list", `!!document.querySelector('#presence li[data-path="carol/box/t1"] button.danger')`)
	admin.wait("carol's browser in the presence list", `!!document.querySelector('#presence li[data-path^="carol/carol-browser/web-"]')`)
	admin.run("kick carol's tail", chromedp.Click(chromedp.CSS(`#presence li[data-path="carol/box/t1"] button.danger`)))
	tail.exitsWith(1, "unsubscribed from #proj: kicked from the channel by bob")
	admin.wait("carol's tail out of the presence list", `!document.querySelector('#presence li[data-path="carol/box/t1"]')`)

	// A ban of the user ends her new tail and her browser's subscription,
	// and keeps her out.
	tail = start(t, carol, false, "tail", "--channel", "proj", "--as", "t2")
	tail.expectStderr(`^tailing #proj as carol/box/t2`)
	admin.run("ban carol",
		chromedp.SendKeys(chromedp.ID("kick-target"), "carol"),
		chromedp.Click(chromedp.ID("ban-btn")))
	tail.exitsWith(1, "unsubscribed from #proj: banned from the channel by bob")
	admin.wait("carol in the ban list", `!!document.querySelector('#bans li[data-item="carol"]')`)
	member.wait("the ban in carol's browser", `document.getElementById("notice").textContent.includes("Left #proj: banned from the channel")`)
	if r := cli(t, carol, "join", "proj"); r.code != 1 || !strings.Contains(r.stderr, "join rejected") {
		t.Fatalf("carol's join after the ban: exit %d, %q", r.code, r.stderr)
	}
	admin.noErrors()
	member.noErrors()
}
