package server

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/conclave/conclave/protocol"
)

var soakDuration = flag.Duration("soak.duration", 3*time.Second, "how long TestSoak churns sessions and carries traffic")

// underRace reports whether the test binary was built with -race; long
// runs skip themselves there.
func underRace() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

// soakClient is a lean session for the soak: it counts what it receives
// and never stops reading.
type soakClient struct {
	conn     *websocket.Conn
	path     string
	wmu      sync.Mutex // one writer at a time
	received atomic.Int64
	acked    atomic.Int64
	dropped  atomic.Value // string: the reason if the server dropped it
	done     chan struct{}
}

func soakDial(ctx context.Context, url string, key ed25519.PrivateKey, handle string, reg *protocol.Frame, channel string) (*soakClient, error) {
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(protocol.MaxFramePostAuth)
	fail := func(err error) (*soakClient, error) {
		conn.CloseNow()
		return nil, err
	}
	write := func(f *protocol.Frame) error {
		return conn.Write(ctx, websocket.MessageText, protocol.MustEncode(f))
	}
	read := func() (*protocol.Frame, error) {
		_, b, err := conn.Read(ctx)
		if err != nil {
			return nil, err
		}
		fs, err := protocol.DecodeMessage(b)
		if err != nil || len(fs) == 0 {
			return nil, fmt.Errorf("undecodable %q: %v", b, err)
		}
		return fs[0], nil
	}
	if err := write(&protocol.Frame{Type: protocol.THello, Version: 1, Session: handle}); err != nil {
		return fail(err)
	}
	ch, err := read()
	if err != nil {
		return fail(err)
	}
	if reg != nil {
		reg.Type, reg.Pubkey = protocol.TRegister, key.Public().(ed25519.PublicKey)
		if err := write(reg); err != nil {
			return fail(err)
		}
	}
	if err := write(&protocol.Frame{Type: protocol.TAuth, Pubkey: key.Public().(ed25519.PublicKey),
		Signature: protocol.SignAuth(key, ch.ServerID, ch.Nonce, handle)}); err != nil {
		return fail(err)
	}
	est, err := read()
	if err != nil || est.Type != protocol.TEstablished {
		return fail(fmt.Errorf("handshake: %+v %v", est, err))
	}
	c := &soakClient{conn: conn, path: est.Path, done: make(chan struct{})}
	if channel != "" {
		if err := write(&protocol.Frame{Type: protocol.TJoin, ID: "join", Channel: channel}); err != nil {
			return fail(err)
		}
		for {
			f, err := read()
			if err != nil {
				return fail(err)
			}
			if f.ID == "join" {
				if f.Type != protocol.TJoined {
					return fail(fmt.Errorf("join %s: %+v", channel, f))
				}
				break
			}
		}
	}
	go func() {
		defer close(c.done)
		for {
			_, b, err := conn.Read(context.Background())
			if err != nil {
				return
			}
			fs, _ := protocol.DecodeMessage(b)
			for _, f := range fs {
				switch {
				case f.Type == protocol.TChannelMsg:
					c.received.Add(1)
				case f.Type == protocol.TAck:
					c.acked.Add(1)
				case f.Type == protocol.TError && f.ID == "":
					c.dropped.Store(f.Message)
				}
			}
		}
	}()
	return c, nil
}

func (c *soakClient) post(channel, text string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.conn.Write(ctx, websocket.MessageText, protocol.MustEncode(&protocol.Frame{Type: protocol.TChannelMsg, ID: "p", Channel: channel, Body: &text}))
}

// close ends the session, half of the time politely and otherwise by
// dropping the TCP connection.
func (c *soakClient) close(polite bool) {
	if polite {
		c.conn.Close(websocket.StatusNormalClosure, "")
	} else {
		c.conn.CloseNow()
	}
	<-c.done
}

type memFigures struct {
	goroutines int
	heap       uint64
}

func measure() memFigures {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memFigures{goroutines: runtime.NumGoroutine(), heap: ms.HeapAlloc}
}

// TestSoak holds 1 000 sessions on one server, replaces 100 of them every
// second (100 connects and 100 disconnects per second) while posts flow in
// ten channels, for -soak.duration. Afterwards every session is closed and
// the goroutines and the heap must come back to what they were before the
// first session (with slack for the history the posts left behind).
func TestSoak(t *testing.T) {
	if testing.Short() || underRace() {
		t.Skip("soak: skipped under -short and -race")
	}
	const (
		sessions  = 1000
		users     = 10
		channels  = 10
		churnRate = 100 // connects and disconnects per second
		postRate  = 100 // posts per second, over all channels
	)
	// The handshake and idle timeouts have tests of their own; here, on a
	// loaded machine, 1 000 handshakes in a row or a session that happens
	// to post nothing for a minute must not end the soak.
	env := newTestEnv(t, Config{NoSync: true, HandshakesPerIP: -1, MaxConnsPerIP: -1, AdminRate: -1,
		HandshakeTimeout: 2 * time.Minute, IdleTimeout: 10 * time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), *soakDuration+2*time.Minute)
	defer cancel()
	keys := make([]ed25519.PrivateKey, users)
	for u := range keys {
		keys[u] = newKey(t)
		c, err := soakDial(ctx, env.url, keys[u], "setup", &protocol.Frame{Username: fmt.Sprintf("user%d", u), Machine: "m"}, "")
		if err != nil {
			t.Fatalf("register user%d: %v", u, err)
		}
		if u == 0 {
			for ch := 0; ch < channels; ch++ {
				c.wmu.Lock()
				err := c.conn.Write(ctx, websocket.MessageText, protocol.MustEncode(&protocol.Frame{Type: protocol.TCreateChannel, ID: "c", Channel: fmt.Sprintf("room%d", ch)}))
				c.wmu.Unlock()
				if err != nil {
					t.Fatal(err)
				}
			}
			for deadline := time.Now().Add(10 * time.Second); c.acked.Load() < channels; {
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d channels created", c.acked.Load(), channels)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		c.close(true)
	}
	waitNoSessions(t, env.srv)
	before := measure()

	var (
		mu     sync.Mutex
		live   = make(map[int]*soakClient) // by slot
		serial atomic.Int64
		opened atomic.Int64
		closed atomic.Int64
		posted atomic.Int64
		recv   atomic.Int64
		acks   atomic.Int64
	)
	open := func(slot int) error {
		n := serial.Add(1)
		c, err := soakDial(ctx, env.url, keys[slot%users], fmt.Sprintf("s%d", n), nil, fmt.Sprintf("room%d", slot%channels))
		if err != nil {
			return fmt.Errorf("open slot %d: %w", slot, err)
		}
		opened.Add(1)
		mu.Lock()
		live[slot] = c
		mu.Unlock()
		return nil
	}
	retire := func(c *soakClient, polite bool) {
		c.close(polite)
		closed.Add(1)
		recv.Add(c.received.Load())
		acks.Add(c.acked.Load())
		if why, _ := c.dropped.Load().(string); why != "" {
			t.Errorf("session %s was dropped by the server: %s", c.path, why)
		}
	}

	// Open the 1 000.
	start := time.Now()
	errs := make(chan error, sessions)
	var wg sync.WaitGroup
	slots := make(chan int, sessions)
	for i := 0; i < sessions; i++ {
		slots <- i
	}
	close(slots)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for slot := range slots {
				if err := open(slot); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d sessions open in %v", sessions, time.Since(start).Round(time.Millisecond))
	if n := len(env.srv.hub.paths("")); n != sessions {
		t.Fatalf("presence lists %d sessions, want %d", n, sessions)
	}

	// Churn and traffic.
	stop := make(chan struct{})
	var bg sync.WaitGroup
	churnErr := make(chan error, 1)
	bg.Add(2)
	go func() { // replace one session every 1/churnRate s
		defer bg.Done()
		tick := time.NewTicker(time.Second / churnRate)
		defer tick.Stop()
		var inflight sync.WaitGroup
		defer inflight.Wait()
		sem := make(chan struct{}, 32)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			slot := rand.IntN(sessions)
			mu.Lock()
			c, ok := live[slot]
			delete(live, slot)
			mu.Unlock()
			if !ok {
				continue // being replaced already
			}
			sem <- struct{}{}
			inflight.Add(1)
			go func(i int) {
				defer func() { <-sem; inflight.Done() }()
				retire(c, i%2 == 0)
				if err := open(slot); err != nil {
					select {
					case churnErr <- err:
					default:
					}
				}
			}(i)
		}
	}()
	go func() { // post every 1/postRate s from a random live session
		defer bg.Done()
		tick := time.NewTicker(time.Second / postRate)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			slot := rand.IntN(sessions)
			mu.Lock()
			c := live[slot]
			mu.Unlock()
			if c != nil && c.post(fmt.Sprintf("room%d", slot%channels), strings.Repeat("m", 200)) == nil {
				posted.Add(1)
			}
		}
	}()
	var peak memFigures
	for end := time.Now().Add(*soakDuration); time.Now().Before(end); {
		time.Sleep(250 * time.Millisecond)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak.goroutines = max(peak.goroutines, runtime.NumGoroutine())
		peak.heap = max(peak.heap, ms.HeapAlloc)
	}
	close(stop)
	bg.Wait()
	select {
	case err := <-churnErr:
		t.Fatal(err)
	default:
	}

	// Close everything.
	mu.Lock()
	all := make([]*soakClient, 0, len(live))
	for _, c := range live {
		all = append(all, c)
	}
	live = nil
	mu.Unlock()
	for i, c := range all {
		wg.Add(1)
		go func(i int, c *soakClient) {
			defer wg.Done()
			retire(c, i%2 == 0)
		}(i, c)
	}
	wg.Wait()
	waitNoSessions(t, env.srv)
	goroutineSlack, heapSlack := 10, uint64(16<<20)
	settle := time.Now().Add(10 * time.Second)
	after := measure()
	for (after.goroutines > before.goroutines+goroutineSlack || after.heap > before.heap+heapSlack) && time.Now().Before(settle) {
		time.Sleep(100 * time.Millisecond)
		after = measure()
	}
	t.Logf("soak %v: %d sessions held, %d connects and %d disconnects in all, %d posts, %d acks, %d deliveries",
		*soakDuration, sessions, opened.Load(), closed.Load(), posted.Load(), acks.Load(), recv.Load())
	t.Logf("goroutines: %d before, %d at peak, %d after; heap: %.1f MiB before, %.1f MiB at peak, %.1f MiB after",
		before.goroutines, peak.goroutines, after.goroutines, mib(before.heap), mib(peak.heap), mib(after.heap))
	if after.goroutines > before.goroutines+goroutineSlack {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before the soak, %d after it\n%s", before.goroutines, after.goroutines, buf[:runtime.Stack(buf, true)])
	}
	if after.heap > before.heap+heapSlack {
		t.Errorf("heap: %.1f MiB before the soak, %.1f MiB after it", mib(before.heap), mib(after.heap))
	}
	if posted.Load() == 0 || recv.Load() == 0 {
		t.Errorf("no traffic: %d posts, %d deliveries", posted.Load(), recv.Load())
	}
	// Every post that reached the server was acknowledged, except those
	// whose session closed before its ack arrived.
	if acks.Load() < posted.Load()*9/10 {
		t.Errorf("%d acks for %d posts", acks.Load(), posted.Load())
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// waitNoSessions waits until presence is empty.
func waitNoSessions(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		n := len(s.hub.paths(""))
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions still present", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
