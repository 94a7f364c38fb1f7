package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/control"
)

// Run with CONCLAVE_BRIDGE_MEASURE=1:
//
//	CONCLAVE_BRIDGE_MEASURE=1 go test ./cmd/conclave -run TestBridgeMeasure -v
func skipUnlessMeasuring(t *testing.T) {
	if os.Getenv("CONCLAVE_BRIDGE_MEASURE") == "" {
		t.Skip("a measurement: set CONCLAVE_BRIDGE_MEASURE=1 to run it")
	}
}

// TestBridgeMeasureLatency measures inbound latency: from the moment a
// post is sent to the server until its notifications/claude/channel line
// is read from the bridge's stdout, over 1 000 messages sent one at a
// time.
func TestBridgeMeasureLatency(t *testing.T) {
	skipUnlessMeasuring(t)
	w := newWorld(t, nil, "alice", "bob")
	bob := w.dial("bob", "bt")
	createChannel(t, bob, "ops", "public")
	joinConn(t, bob, "ops")
	c := startBridge(t, w.dirs["alice"], "", "--as", "main")
	c.ok("join_channel", map[string]any{"channel": "ops"})
	post(t, bob, "ops", "warm-up")
	c.wait("the warm-up", 5*time.Second, bodyNote("warm-up"))

	const n = 1000
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		body := fmt.Sprintf("m%04d", i)
		start := time.Now()
		post(t, bob, "ops", body)
		note := c.wait(body, 5*time.Second, bodyNote(body))
		lat = append(lat, note.At.Sub(start))
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[int(p*float64(n-1))] }
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	t.Logf("inbound latency over %d messages: p50 %v, p90 %v, p99 %v, max %v, mean %v",
		n, pct(0.50), pct(0.90), pct(0.99), lat[n-1], sum/time.Duration(n))
}

// TestBridgeMeasureRSS measures the bridge's resident memory with 3
// servers and 50 joined channels, idle and after 1 000 deliveries.
func TestBridgeMeasureRSS(t *testing.T) {
	skipUnlessMeasuring(t)
	var worlds []*world
	first := newWorld(t, nil, "alice", "bob")
	worlds = append(worlds, first)
	for i := 0; i < 2; i++ {
		w := newWorld(t, nil, "bob")
		w.dirs["alice"] = first.dirs["alice"]
		w.register("alice")
		worlds = append(worlds, w)
	}
	var joins []string
	type target struct {
		w  *world
		ch string
	}
	var targets []target
	for i := 0; i < 50; i++ {
		w := worlds[i%3]
		ch := fmt.Sprintf("chan-%02d", i)
		conn := w.dial("bob", "setup")
		createChannel(t, conn, ch, "public")
		joins = append(joins, "--join", w.url+"#"+ch)
		targets = append(targets, target{w, ch})
	}
	c := startBridge(t, first.dirs["alice"], "", append([]string{"--as", "main"}, joins...)...)
	deadline := time.Now().Add(20 * time.Second)
	for _, w := range worlds {
		for {
			got := c.ok("list_channels", map[string]any{"server": w.url})
			want := 0
			for _, tg := range targets {
				if tg.w == w {
					want++
				}
			}
			if strings.Count(got, "joined") == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("not all channels joined on %s:\n%s", w.url, got)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	time.Sleep(time.Second)
	pid := c.cmd.Process.Pid
	t.Logf("bridge RSS with 3 servers and 50 joined channels, idle: %s", vmRSS(t, pid))

	senders := make([]*control.Conn, 3)
	for i, w := range worlds {
		senders[i] = w.dial("bob", "sender")
	}
	for _, tg := range targets {
		joinConn(t, senders[slices.Index(worlds, tg.w)], tg.ch)
	}
	for i := 0; i < 1000; i++ {
		tg := targets[i%len(targets)]
		post(t, senders[slices.Index(worlds, tg.w)], tg.ch, fmt.Sprintf("load %04d %s", i, strings.Repeat("y", 200)))
	}
	c.wait("the last delivery", 20*time.Second, func(n *rpcNote) bool { return strings.Contains(n.Content, "load 0999") })
	t.Logf("bridge RSS after 1 000 deliveries: %s", vmRSS(t, pid))
}

func vmRSS(t *testing.T, pid int) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:"))
		}
	}
	return "unknown"
}
