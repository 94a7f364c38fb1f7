package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/conclave/conclave/protocol"
)

// BenchmarkScale holds as many sessions as the open-file limit allows
// against a real `conclave serve` child process, then restarts the server
// and times the reconnection storm:
//
//	go test ./cmd/conclave -run XXX -bench Scale -benchtime 1x -timeout 30m
//
// The sessions belong to one user (one key, a handle each), connect from
// 16 loopback source addresses (127.0.0.2–17, so that no address runs out
// of ports or passes a per-address limit) and all join one channel. It
// reports the server's resident memory per idle session, the time and
// rate of one post's fan-out to every session (10 posts), and after a
// graceful restart (going-away to every session, then a new server on the
// same data directory and port) the time until every client is back and
// joined, and the new server's peak resident memory during that storm.
// Clients reconnect with jittered exponential backoff (250 ms doubling to
// 4 s, each wait drawn from half to all of it); the server keeps its
// default handshake limit (1 000 per second per address), so clients
// refused for the rate retry.
//
// CONCLAVE_SCALE_SESSIONS sets the number of sessions (default: the
// open-file limit less 1 000, at most 19 000). Both processes need one
// file per session, each under its own limit. Every phase is bounded in
// time, and the whole run stops by itself.
func BenchmarkScale(b *testing.B) {
	n := scaleSessions(b)
	for i := 0; i < b.N; i++ {
		scaleOnce(b, n)
	}
}

func scaleSessions(b *testing.B) int {
	if s := os.Getenv("CONCLAVE_SCALE_SESSIONS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1_000_000 {
			b.Fatalf("CONCLAVE_SCALE_SESSIONS=%q: want a number of sessions", s)
		}
		return n
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	return int(min(19_000, int64(lim.Cur)-1000))
}

// scaleState is what the clients share.
type scaleState struct {
	url        string
	key        ed25519.PrivateKey
	hcs        []*http.Client // one per source address
	up         atomic.Int64   // clients established and joined
	deliveries atomic.Int64
	refused    atomic.Int64 // failed connection attempts (retried)
	// throttle holds connection attempts to the slots while the sessions
	// first connect; the storm after the restart is not throttled.
	throttle atomic.Bool
	stop     chan struct{}
}

const scaleChannel = "all"

func scaleOnce(b *testing.B, n int) {
	addr, data := freeAddr(b), b.TempDir()
	serveArgs := []string{"--max-conns-per-ip", strconv.Itoa(n + 100)}
	srv := crashServe(b, addr, data, serveArgs...)
	defer func() { srv.cmd.Process.Signal(syscall.SIGKILL); <-srv.done }()
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()

	st := &scaleState{url: "ws://" + addr, key: newFloodKey(b), stop: make(chan struct{})}
	for a := 2; a < 18; a++ {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(a))}, Timeout: 10 * time.Second}
		st.hcs = append(st.hcs, &http.Client{Transport: &http.Transport{DialContext: d.DialContext}})
	}
	// The user and the channel; this session is also the publisher.
	pub, err := scaleLogin(ctx, st, http.DefaultClient, "pub", true)
	if err != nil {
		b.Fatal(err)
	}
	if err := floodRequest(ctx, pub, &protocol.Frame{Type: protocol.TCreateChannel, ID: "c", Channel: scaleChannel}); err != nil {
		b.Fatal(err)
	}
	pub.CloseNow()
	rss0 := residentBytes(srv.cmd.Process.Pid)

	// Connect every session: at most 256 handshakes in flight.
	st.throttle.Store(true)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	slots := make(chan struct{}, 256)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			scaleClient(ctx, st, i, slots)
		}()
	}
	defer func() { close(st.stop); wg.Wait() }()
	if err := waitUp(ctx, st, n, 10*time.Minute); err != nil {
		b.Fatalf("connecting: %v", err)
	}
	connected := time.Since(start)
	time.Sleep(2 * time.Second) // let the server settle
	rss1 := residentBytes(srv.cmd.Process.Pid)
	b.Logf("%d sessions connected and joined in %v (%d attempts refused and retried); server RSS %d MiB → %d MiB",
		n, connected.Round(time.Millisecond), st.refused.Load(), rss0>>20, rss1>>20)
	b.ReportMetric(float64(n), "sessions")
	b.ReportMetric(float64(rss1-rss0)/float64(n)/1024, "KiB/idle-session")
	b.ReportMetric(float64(n)/connected.Seconds(), "connects/s")

	// Fan-out: 10 posts, each to every session.
	pub, err = scaleLogin(ctx, st, http.DefaultClient, "pub", false)
	if err != nil {
		b.Fatal(err)
	}
	defer pub.CloseNow()
	if err := floodRequest(ctx, pub, &protocol.Frame{Type: protocol.TJoin, ID: "j", Channel: scaleChannel}); err != nil {
		b.Fatal(err)
	}
	const posts = 10
	cpu0, _ := cpuTime(srv.cmd.Process.Pid)
	start = time.Now()
	body := "fan-out to every session: <all> & \"everyone\"\n\t✓"
	for k := range posts {
		if err := floodRequest(ctx, pub, &protocol.Frame{Type: protocol.TChannelMsg, ID: "p" + strconv.Itoa(k), Channel: scaleChannel, Body: &body}); err != nil {
			b.Fatal(err)
		}
	}
	for want := int64(posts * n); st.deliveries.Load() < want; {
		if time.Since(start) > 2*time.Minute || ctx.Err() != nil {
			b.Fatalf("fan-out: %d of %d deliveries after %v", st.deliveries.Load(), want, time.Since(start))
		}
		time.Sleep(5 * time.Millisecond)
	}
	fan := time.Since(start)
	cpu1, _ := cpuTime(srv.cmd.Process.Pid)
	b.Logf("fan-out: %d posts to %d sessions in %v, server CPU %v", posts, n, fan.Round(time.Millisecond), (cpu1 - cpu0).Round(time.Millisecond))
	b.ReportMetric(fan.Seconds()*1000/posts, "ms/post-to-all")
	b.ReportMetric(float64(posts*n)/fan.Seconds(), "deliveries/s")
	pub.CloseNow()

	// Restart: a graceful stop, then a new server on the same data and
	// port; every client reconnects on its own.
	st.throttle.Store(false)
	killed := time.Now()
	srv.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-srv.done:
	case <-time.After(time.Minute):
		b.Fatal("the server did not stop within a minute of SIGTERM")
	}
	stopped := time.Since(killed)
	srv = crashServe(b, addr, data, serveArgs...)
	started := time.Now()
	if err := waitUp(ctx, st, n, 5*time.Minute); err != nil {
		b.Fatalf("after the restart: %v", err)
	}
	back := time.Since(started)
	peak := vmHWM(srv.cmd.Process.Pid)
	b.Logf("restart: stopped in %v; every client back and joined %v after the new server listened (%v after SIGTERM); storm peak RSS %d MiB; %d attempts refused and retried in all",
		stopped.Round(time.Millisecond), back.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond), peak>>20, st.refused.Load())
	b.ReportMetric(back.Seconds(), "s-all-back")
	b.ReportMetric(float64(peak)/(1<<20), "storm-peak-RSS-MiB")
	b.StopTimer()
}

// waitUp waits until n clients are up, at most d.
func waitUp(ctx context.Context, st *scaleState, n int, d time.Duration) error {
	end := time.Now().Add(d)
	for st.up.Load() < int64(n) {
		if time.Now().After(end) || ctx.Err() != nil {
			return fmt.Errorf("%d of %d sessions up after %v", st.up.Load(), n, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// scaleClient keeps session i connected and joined, counting its
// deliveries, until st.stop; it reconnects with jittered backoff.
func scaleClient(ctx context.Context, st *scaleState, i int, slots chan struct{}) {
	hc := st.hcs[i%len(st.hcs)]
	backoff := 250 * time.Millisecond
	for {
		throttled := st.throttle.Load()
		if throttled {
			select {
			case <-st.stop:
				return
			case slots <- struct{}{}:
			}
		}
		conn, err := scaleLogin(ctx, st, hc, "s"+strconv.Itoa(i), false)
		if err == nil {
			err = floodRequest(ctx, conn, &protocol.Frame{Type: protocol.TJoin, ID: "j", Channel: scaleChannel})
			if err != nil {
				conn.CloseNow()
			}
		}
		if throttled {
			<-slots
		}
		if err != nil {
			st.refused.Add(1)
			wait := backoff/2 + rand.N(backoff/2+1)
			backoff = min(2*backoff, 4*time.Second)
			select {
			case <-st.stop:
				return
			case <-time.After(wait):
			}
			continue
		}
		backoff = 250 * time.Millisecond
		st.up.Add(1)
		done := make(chan struct{})
		go func() {
			select {
			case <-st.stop:
				conn.CloseNow()
			case <-done:
			}
		}()
		for {
			_, msg, err := conn.Read(ctx)
			if err != nil {
				break
			}
			st.deliveries.Add(int64(bytes.Count(msg, []byte(`{"type":"channel_msg"`))))
		}
		close(done)
		conn.CloseNow()
		st.up.Add(-1)
		// Reconnect after a jittered pause, as a client told the server
		// is going away should.
		select {
		case <-st.stop:
			return
		case <-time.After(rand.N(backoff) + 1):
		}
	}
}

// scaleLogin opens session handle of the scale user through hc
// (registering the user first if register).
func scaleLogin(ctx context.Context, st *scaleState, hc *http.Client, handle string, register bool) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, st.url, &websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{protocol.Subprotocol}})
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(protocol.MaxMessage)
	fail := func(err error) (*websocket.Conn, error) { conn.CloseNow(); return nil, err }
	if err := floodSend(ctx, conn, &protocol.Frame{Type: protocol.THello, Version: protocol.Version, Session: handle}); err != nil {
		return fail(err)
	}
	ch, err := floodNext(ctx, conn)
	if err != nil {
		return fail(err)
	}
	if ch.Type != protocol.TChallenge {
		return fail(fmt.Errorf("got %s %s, want a challenge", ch.Type, ch.Message))
	}
	pub := st.key.Public().(ed25519.PublicKey)
	if register {
		if err := floodSend(ctx, conn, &protocol.Frame{Type: protocol.TRegister, Username: "scale", Machine: "m", Pubkey: pub}); err != nil {
			return fail(err)
		}
	}
	if err := floodSend(ctx, conn, &protocol.Frame{Type: protocol.TAuth, Pubkey: pub, Signature: protocol.SignAuth(st.key, ch.ServerID, ch.Nonce, handle)}); err != nil {
		return fail(err)
	}
	if f, err := floodNext(ctx, conn); err != nil || f.Type != protocol.TEstablished {
		return fail(fmt.Errorf("login %s: %+v %v", handle, f, err))
	}
	return conn, nil
}

// residentBytes reads the resident set size of process pid, in bytes.
func residentBytes(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0
	}
	var size, rss int64
	fmt.Sscan(string(b), &size, &rss)
	return rss * int64(os.Getpagesize())
}

// cpuTime reads the user and system CPU time of process pid.
func cpuTime(pid int) (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	ut, _ := strconv.ParseInt(string(f[11]), 10, 64)
	stt, _ := strconv.ParseInt(string(f[12]), 10, 64)
	return time.Duration(ut+stt) * 10 * time.Millisecond, true
}
