package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/conclave/conclave/control"
	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

// poster is a connection of the user of config dir dir, joined to
// channel, for posting many messages without starting a process each.
func poster(t *testing.T, dir, channel string) *control.Conn {
	t.Helper()
	cfg, err := identity.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := cfg.SelectServer("")
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := identity.LoadKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := control.Dial(context.Background(), &control.Options{URL: srv.URL, Key: key, Session: "poster", PinnedServerID: srv.ServerID})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		for range conn.Events() { // nobody else posts, but never block the reader
		}
	}()
	if _, err := conn.Request(context.Background(), &protocol.Frame{Type: protocol.TJoin, Channel: channel}); err != nil {
		t.Fatal(err)
	}
	return conn
}

// postAll posts bodies to channel on conn, with parallel requests in
// flight (1: one after the other, so that seq order is the order of
// bodies).
func postAll(t *testing.T, conn *control.Conn, channel string, bodies []string, parallel int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, parallel)
	next := make(chan string)
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range next {
				r, err := conn.Request(context.Background(), &protocol.Frame{Type: protocol.TChannelMsg, Channel: channel, Body: &body})
				if err == nil && (r.Type != protocol.TAck || r.Seq == 0) {
					err = fmt.Errorf("post answered with %+v", r)
				}
				if err != nil {
					errs <- err
					for range next {
					}
					return
				}
			}
		}()
	}
	for _, b := range bodies {
		next <- b
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

type jsonLine struct {
	Kind    string `json:"kind"`
	Channel string `json:"channel"`
	From    string `json:"from"`
	Body    string `json:"body"`
	Seq     uint64 `json:"seq"`
	History bool   `json:"history"`
}

// TestTailSinceWholeWindow: tail --since prints a window of 1 200
// messages (three pages) exactly once each, in order, then streams.
func TestTailSinceWholeWindow(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a server")
	}
	url, _, _ := startServer(t, "--rate-limit", "0")
	dir := t.TempDir()
	a := []string{"CONCLAVE_CONFIG_DIR=" + dir}
	ok(t, a, "register", "alice", "--server", url, "--machine", "wa")
	ok(t, a, "channel", "create", "ops")
	conn := poster(t, dir, "ops")
	const n = 1200
	bodies := make([]string, n)
	for i := range bodies {
		bodies[i] = fmt.Sprintf("m%04d", i)
	}
	postAll(t, conn, "ops", bodies, 1)

	tail := start(t, a, false, "--json", "tail", "--channel", "ops", "--since", "1h")
	var last uint64
	for i := range n {
		var l jsonLine
		if err := json.Unmarshal([]byte(tail.next()), &l); err != nil {
			t.Fatal(err)
		}
		if l.Body != bodies[i] || l.Seq <= last || !l.History || l.Kind != "channel" || l.Channel != "ops" || l.From != "alice/wa/poster" {
			t.Fatalf("line %d = %+v, want %s after seq %d", i, l, bodies[i], last)
		}
		last = l.Seq
	}
	postAll(t, conn, "ops", []string{"live"}, 1)
	var l jsonLine
	if err := json.Unmarshal([]byte(tail.next()), &l); err != nil || l.Body != "live" || l.History || l.Seq <= last {
		t.Fatalf("live line = %+v (%v)", l, err)
	}
	if rest, code := tail.interrupt(); len(rest) != 0 || code != 0 {
		t.Errorf("after the live line: %q more lines, exit %d", rest, code)
	}
}

// TestTailResumesAcrossRestart stops the server under a running tail,
// posts while it is down and after it is back but before the tail has
// reconnected, then after: the tail prints every message exactly once, in
// order.
func TestTailResumesAcrossRestart(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts servers")
	}
	addr, data := freeAddr(t), t.TempDir()
	url := "ws://" + addr
	srv := serveDir(t, addr, data)
	a := []string{"CONCLAVE_CONFIG_DIR=" + t.TempDir()}
	ok(t, a, "register", "alice", "--server", url, "--machine", "wa")
	ok(t, a, "channel", "create", "ops", "--visibility", "private")
	tail := start(t, a, false, "tail", "--channel", "ops", "--as", "tl")
	tail.expectStderr(`^tailing #ops as alice/wa/tl`)

	var sent []string
	send := func(phase string) {
		for i := range 3 {
			body := fmt.Sprintf("%s-%d", phase, i)
			ok(t, a, "send", "--channel", "ops", body)
			sent = append(sent, body)
		}
	}
	send("before")
	if code := srv.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exit %d", code)
	}
	tail.waitStderr("reconnecting")
	lost := time.Now()
	// The tail retries after 1 s (the server is still down), then after
	// 2 s more: restart and post in between.
	time.Sleep(time.Until(lost.Add(1300 * time.Millisecond)))
	srv = serveDir(t, addr, data)
	send("during")
	if strings.Contains(tail.stderrText(), "reconnected") {
		t.Logf("the tail reconnected before the last 'during' post (%v after the loss)", time.Since(lost))
	}
	tail.waitStderr("✓ reconnected; resuming #ops")
	send("after")

	var got []string
	rx := regexp.MustCompile(`^\[ops\] alice/wa/cli-\d+: (.*)$`)
	for range sent {
		l := tail.next()
		m := rx.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("tail printed %q", l)
		}
		got = append(got, m[1])
	}
	rest, code := tail.interrupt()
	got = append(got, rest...)
	if fmt.Sprint(got) != fmt.Sprint(sent) || code != 0 {
		t.Errorf("tail printed %q (exit %d), want exactly %q", got, code, sent)
	}
	srv.stop(syscall.SIGTERM)
}

// TestMeasureTailSince measures `tail --since` over 10 000 retained
// messages in one channel of a server with a data dir: the time from
// starting the process to the last line of the window. Run it with
// CONCLAVE_MEASURE=1 go test -run TestMeasureTailSince -v ./cmd/conclave.
func TestMeasureTailSince(t *testing.T) {
	if os.Getenv("CONCLAVE_MEASURE") == "" {
		t.Skip("a measurement: set CONCLAVE_MEASURE=1 to run it")
	}
	const n = 10000
	addr, data := freeAddr(t), t.TempDir()
	srv := serveDir(t, addr, data, "--rate-limit", "0")
	dir := t.TempDir()
	a := []string{"CONCLAVE_CONFIG_DIR=" + dir}
	ok(t, a, "register", "alice", "--server", "ws://"+addr, "--machine", "wa")
	ok(t, a, "channel", "create", "ops")
	bodies := make([]string, n)
	for i := range bodies {
		bodies[i] = fmt.Sprintf("message %05d: the build of commit %08x passed all 1432 tests", i, i*7919)
	}
	t0 := time.Now()
	postAll(t, poster(t, dir, "ops"), "ops", bodies, 64)
	t.Logf("posted %d messages in %v", n, time.Since(t0).Round(time.Millisecond))

	for _, mode := range [][]string{{"--json"}, nil} {
		var runs, banners []time.Duration
		for range 5 {
			args := append(append([]string{}, mode...), "tail", "--channel", "ops", "--since", "1h")
			t0 := time.Now()
			tail := start(t, a, false, args...)
			if mode == nil {
				tail.next() // the banner: connected and joined
				banners = append(banners, time.Since(t0))
			}
			for range n {
				tail.next()
			}
			runs = append(runs, time.Since(t0))
			if rest, _ := tail.interrupt(); len(rest) != 0 {
				t.Fatalf("%d lines after the window", len(rest))
			}
		}
		t.Logf("tail --since 1h %v over %d retained messages, process start to the last line, 5 runs: %v", mode, n, runs)
		if banners != nil {
			t.Logf("  of which process start, connect and join (the banner): %v", banners)
		}
	}
	// Again after a restart, from the history on disk.
	srv.stop(syscall.SIGTERM)
	srv = serveDir(t, addr, data, "--rate-limit", "0")
	t0 = time.Now()
	tail := start(t, a, false, "--json", "tail", "--channel", "ops", "--since", "1h")
	for range n {
		tail.next()
	}
	t.Logf("after a restart: %v", time.Since(t0))
	tail.interrupt()
	srv.stop(syscall.SIGTERM)
}

// cutProxy forwards TCP connections to a server and can cut all of them
// at once, as a network failure would.
type cutProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
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
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
	return p
}

// cut closes every connection made so far.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestTailResumesAfterConnectionCut cuts the tail's connection while
// other sessions keep posting, several posts in flight at a time: the
// tail reconnects, catches up and goes on streaming, printing every
// message exactly once, in sequence order.
func TestTailResumesAfterConnectionCut(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a server")
	}
	addr := freeAddr(t)
	serveDir(t, addr, t.TempDir(), "--rate-limit", "0")
	url := "ws://" + addr
	proxy := newCutProxy(t, addr)
	dir := t.TempDir()
	a := []string{"CONCLAVE_CONFIG_DIR=" + dir}
	ok(t, a, "register", "alice", "--server", "ws://"+proxy.ln.Addr().String(), "--machine", "wa")
	ok(t, a, "channel", "create", "ops")
	tail := start(t, a, false, "--json", "tail", "--channel", "ops")
	tail.waitStderr("tailing #ops")

	// The posters talk to the server directly, not through the proxy.
	cfg, _ := identity.LoadConfig(dir)
	key, _, _ := identity.LoadKey(dir)
	const posters, each = 4, 400
	var mu sync.Mutex
	acked := map[uint64]string{}
	var wg sync.WaitGroup
	for p := range posters {
		conn, err := control.Dial(context.Background(), &control.Options{URL: url, Key: key,
			Session: fmt.Sprintf("poster%d", p), PinnedServerID: cfg.Servers[0].ServerID})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		go func() {
			for range conn.Events() {
			}
		}()
		if _, err := conn.Request(context.Background(), &protocol.Frame{Type: protocol.TJoin, Channel: "ops"}); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if p == 0 && i == each/4 {
					proxy.cut()
				}
				body := fmt.Sprintf("p%d-%04d", p, i)
				r, err := conn.Request(context.Background(), &protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: &body})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[r.Seq] = body
				mu.Unlock()
				time.Sleep(5 * time.Millisecond) // posting goes on while the tail reconnects
			}
		}()
	}
	var last uint64
	for i := range posters * each {
		var l jsonLine
		if err := json.Unmarshal([]byte(tail.next()), &l); err != nil {
			t.Fatal(err)
		}
		if l.Seq <= last {
			t.Fatalf("line %d = %+v after seq %d", i, l, last)
		}
		last = l.Seq
		mu.Lock()
		body, ok := acked[l.Seq]
		mu.Unlock()
		if ok && body != l.Body {
			t.Fatalf("line %d = %+v, but seq %d is %q", i, l, l.Seq, body)
		}
	}
	wg.Wait()
	if rest, code := tail.interrupt(); len(rest) != 0 || code != 0 {
		t.Errorf("after the window: %q more lines, exit %d", rest, code)
	}
	if !strings.Contains(tail.stderrText(), "✓ reconnected; resuming #ops") {
		t.Errorf("tail stderr %q: no reconnection", tail.stderrText())
	}
}

// TestTailSinceAcrossKilledServer: `tail --since` prints a window while
// another session posts live, then the server is killed (SIGKILL) and
// started again and posting goes on: the tail prints every message once,
// in order, history and live meeting at the join's head each time.
func TestTailSinceAcrossKilledServer(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts servers")
	}
	addr, data := freeAddr(t), t.TempDir()
	url := "ws://" + addr
	srv := serveDir(t, addr, data, "--rate-limit", "0")
	dir := t.TempDir()
	a := []string{"CONCLAVE_CONFIG_DIR=" + dir}
	ok(t, a, "register", "alice", "--server", url, "--machine", "wa")
	ok(t, a, "channel", "create", "ops")
	var sent []string
	bodies := func(phase string, n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("%s%04d", phase, i))
		}
		sent = append(sent, out...)
		return out
	}
	conn := poster(t, dir, "ops")
	postAll(t, conn, "ops", bodies("window-", 600), 1)

	tail := start(t, a, false, "--json", "tail", "--channel", "ops", "--since", "1h", "--as", "tl")
	// Post while the tail reads the window and joins the live stream.
	live := bodies("live-", 300)
	posted := make(chan error, 1)
	go func() {
		for _, b := range live {
			if _, err := conn.Request(context.Background(), &protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: &b}); err != nil {
				posted <- err
				return
			}
		}
		posted <- nil
	}()
	var last uint64
	var got []string
	read := func(n int) {
		t.Helper()
		for range n {
			var l jsonLine
			if err := json.Unmarshal([]byte(tail.next()), &l); err != nil {
				t.Fatal(err)
			}
			if l.Seq <= last || l.Kind != "channel" {
				t.Fatalf("after %d lines (seq %d): %+v", len(got), last, l)
			}
			last = l.Seq
			got = append(got, l.Body)
		}
	}
	read(700) // the window and part of the live posts
	if err := <-posted; err != nil {
		t.Fatal(err)
	}
	srv.stop(syscall.SIGKILL)
	tail.waitStderr("reconnecting")
	srv = serveDir(t, addr, data, "--rate-limit", "0")
	postAll(t, poster(t, dir, "ops"), "ops", bodies("after-", 50), 1)
	tail.waitStderr("✓ reconnected; resuming #ops")
	postAll(t, poster(t, dir, "ops"), "ops", bodies("resumed-", 50), 1)
	read(len(sent) - len(got))
	rest, code := tail.interrupt()
	if fmt.Sprint(got) != fmt.Sprint(sent) || len(rest) != 0 || code != 0 {
		t.Errorf("tail printed %d lines then %q (exit %d), want exactly the %d sent, in order", len(got), rest, code, len(sent))
		for i := range min(len(got), len(sent)) {
			if got[i] != sent[i] {
				t.Fatalf("first difference at line %d: %q, want %q", i, got[i], sent[i])
			}
		}
	}
	srv.stop(syscall.SIGTERM)
}
