package control

import (
	"context"
	"crypto/ed25519"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/conclave/conclave/protocol"
)

// runSession runs a session on f as alice/wa that follows channels, with a
// quick backoff, until the test ends; mod adjusts its options.
func runSession(t *testing.T, f *fakeServer, mod func(*SessionOptions), channels ...string) *Session {
	t.Helper()
	key := newKey(t)
	f.enroll(key.Public().(ed25519.PublicKey), "alice/wa")
	o := &SessionOptions{
		Dial: func(ctx context.Context) (*Conn, error) {
			return Dial(ctx, &Options{URL: f.url, Key: key, Session: "s1", PinnedServerID: f.id, DialTimeout: 5 * time.Second})
		},
		Backoff: Backoff{Min: 10 * time.Millisecond, Max: 20 * time.Millisecond},
	}
	if mod != nil {
		mod(o)
	}
	s, err := NewSession(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range channels {
		s.Follow(ch)
	}
	startRun(t, s)
	return s
}

// startRun runs s until the test ends, and checks that Run then returns
// ErrClosed.
func startRun(t *testing.T, s *Session) {
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; !errors.Is(err, ErrClosed) {
			t.Errorf("Run after its context ended: %v, want ErrClosed", err)
		}
		if _, err := s.Next(context.Background()); !errors.Is(err, ErrClosed) {
			t.Errorf("Next after the end: %v, want ErrClosed", err)
		}
	})
}

// until returns the events of s up to and including the first one that
// stop accepts.
func until(t *testing.T, s *Session, stop func(Event) bool) []Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var evs []Event
	for {
		ev, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("Next: %v (after %s)", err, describe(evs[max(0, len(evs)-20):]))
		}
		evs = append(evs, ev)
		if stop(ev) {
			return evs
		}
	}
}

func kind(k EventKind) func(Event) bool { return func(ev Event) bool { return ev.Kind == k } }

// describe names events for failure messages and comparisons: "up",
// "joined:ops", "refused:ops", "msg:ops:4", …
func describe(evs []Event) string {
	var out []string
	for _, ev := range evs {
		switch ev.Kind {
		case EventUp:
			out = append(out, "up")
		case EventLost:
			out = append(out, "lost")
		case EventDialFailed:
			out = append(out, "dial-failed")
		case EventJoined:
			out = append(out, "joined:"+ev.Channel)
		case EventJoinRefused:
			out = append(out, "refused:"+ev.Channel)
		case EventMessage:
			out = append(out, "msg:"+ev.Frame.Channel+":"+ev.Frame.From)
		case EventRenamed:
			out = append(out, "renamed:"+ev.Frame.Channel+">"+ev.Frame.NewName)
		case EventUnsubscribed:
			out = append(out, "unsubscribed:"+ev.Frame.Channel)
		default:
			out = append(out, "frame:"+ev.Frame.Type)
		}
	}
	return strings.Join(out, " ")
}

// joins answers the next n requests, which must be joins, refusing those
// of the channels in refuse; it returns the channels in the order asked.
func joins(ctx context.Context, s *fakeSession, n int, refuse ...string) []string {
	var got []string
	for range n {
		r, err := s.read(ctx)
		if err != nil || r.Type != protocol.TJoin {
			return append(got, "?")
		}
		got = append(got, r.Channel)
		reply := &protocol.Frame{Type: protocol.TJoined, ID: r.ID, Channel: r.Channel, Seq: 1}
		if slices.Contains(refuse, r.Channel) {
			reply = protocol.ErrorFrame(r.ID, &protocol.Error{Code: protocol.CodeUnauthorized, Message: "banned from " + r.Channel})
		}
		if s.send(ctx, reply) != nil {
			return append(got, "?")
		}
	}
	return got
}

// numbered serves each session of f with serve, numbering the
// connections from 0.
func numbered(f *fakeServer, serve func(ctx context.Context, s *fakeSession, n int)) {
	var mu sync.Mutex
	next := 0
	f.serve = func(ctx context.Context, s *fakeSession) {
		mu.Lock()
		n := next
		next++
		mu.Unlock()
		serve(ctx, s, n)
	}
}

// record keeps what each connection of a fake did, by connection.
type record struct {
	mu    sync.Mutex
	joins [][]string
}

func (r *record) add(n int, chans []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.joins) <= n {
		r.joins = append(r.joins, nil)
	}
	r.joins[n] = chans
}

func (r *record) get() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.joins)
}

// TestSessionRejoinsInOrder: every connection joins the followed channels
// in order, then those added later; a followed channel stays after a
// refusal, an added one is dropped; each outcome is reported before any
// frame of that connection.
func TestSessionRejoinsInOrder(t *testing.T) {
	f := newFake(t)
	var rec record
	numbered(f, func(ctx context.Context, s *fakeSession, c int) {
		switch c {
		case 0:
			// A delivery goes out before the joins are answered: it is
			// held until they are.
			s.send(ctx, &protocol.Frame{Type: protocol.TWhisper, From: "bob/wb/s", Target: "alice/wa/s1", Body: str("early")})
			rec.add(c, joins(ctx, s, 3))
			// An added channel, joined by the caller on this connection.
			r, _ := s.read(ctx)
			s.send(ctx, &protocol.Frame{Type: protocol.TJoined, ID: r.ID, Channel: r.Channel})
			s.read(ctx) // the client drops the connection (the test does)
		case 1:
			rec.add(c, joins(ctx, s, 4, "b", "d"))
			s.ws.Close(websocket.StatusGoingAway, "bye")
		default:
			rec.add(c, joins(ctx, s, 3))
			s.read(ctx)
		}
	})
	sess := runSession(t, f, func(o *SessionOptions) { o.Retry = func(error) bool { return true } }, "a", "b", "c")
	evs := until(t, sess, func(ev Event) bool { return ev.Kind == EventJoined && ev.Channel == "c" })
	if got := describe(evs); got != "up joined:a joined:b joined:c" {
		t.Fatalf("first connection: %s", got)
	}
	if ev := until(t, sess, kind(EventFrame)); ev[0].Frame.Type != protocol.TWhisper {
		t.Fatalf("held frame: %s", describe(ev))
	}
	conn := sess.Conn()
	if _, err := conn.Request(context.Background(), &protocol.Frame{Type: protocol.TJoin, Channel: "d"}); err != nil {
		t.Fatal(err)
	}
	sess.Add("d")
	conn.abort(errors.New("test: connection dropped"))
	evs = until(t, sess, func(ev Event) bool { return ev.Kind == EventJoinRefused && ev.Channel == "d" })
	if got := describe(evs); got != "lost up joined:a refused:b joined:c refused:d" {
		t.Fatalf("second connection: %s", got)
	}
	if !evs[3].Rejoin || evs[3].Err == nil || !strings.Contains(evs[3].Err.Error(), "banned from b") {
		t.Errorf("refusal of b: %+v", evs[3])
	}
	evs = until(t, sess, func(ev Event) bool { return ev.Kind == EventJoined && ev.Channel == "c" })
	if got := describe(evs); got != "lost up joined:a joined:b joined:c" {
		t.Fatalf("third connection: %s", got)
	}
	want := [][]string{{"a", "b", "c"}, {"a", "b", "c", "d"}, {"a", "b", "c"}}
	if got := rec.get(); len(got) < 2 || !slices.EqualFunc(got[:2], want[:2], slices.Equal) {
		t.Errorf("joins by connection %v, want %v", got, want)
	}
	got := sess.Channels()
	if len(got) != 3 || got[1] != (SessionChannel{Name: "b", Joined: true}) {
		t.Errorf("channels %+v", got)
	}
}

func str(s string) *string { return &s }

// TestSessionFollowsRenameAcrossReconnect: a renamed channel is joined by
// its new name on the next connection, in its place, and keeps its
// watermark; an unsubscribed one is not joined again.
func TestSessionFollowsRenameAcrossReconnect(t *testing.T) {
	f := newFake(t)
	numbered(f, func(ctx context.Context, s *fakeSession, c int) {
		if c == 0 {
			joins(ctx, s, 3)
			s.send(ctx, &protocol.Frame{Type: protocol.TChannelMsg, Channel: "dev", From: "bob/wb/s", Body: str("x"), Seq: 7},
				&protocol.Frame{Type: protocol.TRenamed, Channel: "dev", NewName: "development"},
				&protocol.Frame{Type: protocol.TUnsubscribed, Channel: "ops", Reason: "kicked"})
			s.ws.Close(websocket.StatusGoingAway, "restarting")
			return
		}
		joins(ctx, s, 2) // the events show which: joined names the channel asked for
		s.read(ctx)
	})
	sess := runSession(t, f, func(o *SessionOptions) { o.Retry = func(error) bool { return true } }, "ops", "dev", "qa")
	qa := 0
	evs := until(t, sess, func(ev Event) bool {
		if ev.Kind == EventJoined && ev.Channel == "qa" {
			qa++
		}
		return qa == 2
	})
	want := "up joined:ops joined:dev joined:qa msg:dev:bob/wb/s renamed:dev>development unsubscribed:ops lost up joined:development joined:qa"
	if got := describe(evs); got != want {
		t.Fatalf("events %s\nwant   %s", got, want)
	}
	if m, ok := sess.Mark("development"); !ok || m.Seq != 7 || m.Synced {
		t.Errorf("watermark of the renamed channel %+v, %v; want seq 7, not synced after the outage", m, ok)
	}
	if _, ok := sess.Mark("dev"); ok {
		t.Error("the old name kept a watermark")
	}
}

// TestSessionOverflowDropsTheConnection: a reader that does not keep up
// makes the session drop the connection instead of letting the
// connection's reader wait; the frames queued before stay, in order.
func TestSessionOverflowDropsTheConnection(t *testing.T) {
	f := newFake(t)
	dropped := make(chan struct{})
	numbered(f, func(ctx context.Context, s *fakeSession, c int) {
		if c > 0 {
			s.read(ctx)
			return
		}
		// More than the Conn's own buffer and the session's: a reader
		// that waited would never see the end of this.
		for i := range eventBuffer + 100 {
			if s.send(ctx, &protocol.Frame{Type: protocol.TWhisper, From: "bob/wb/s", Target: "alice/wa/s1", Body: str("w"), Seq: uint64(i + 1)}) != nil {
				break
			}
		}
		s.read(ctx) // until the client closes
		close(dropped)
	})
	sess := runSession(t, f, func(o *SessionOptions) { o.Buffer = 8 })
	select {
	case <-dropped:
	case <-time.After(10 * time.Second):
		t.Fatal("the session kept a connection whose frames went over its buffer")
	}
	evs := until(t, sess, kind(EventLost))
	if got := describe(evs); got != "up "+strings.Repeat("frame:whisper ", 8)+"lost" {
		t.Fatalf("events %s", got)
	}
	for i, ev := range evs[1:9] {
		if ev.Frame.Seq != uint64(i+1) {
			t.Fatalf("frame %d has seq %d", i, ev.Frame.Seq)
		}
	}
	if !errors.Is(evs[9].Err, ErrOverflow) {
		t.Errorf("lost: %v, want ErrOverflow", evs[9].Err)
	}
	until(t, sess, kind(EventUp)) // and it connects again
}

// TestSessionBackoffJitter: two sessions that fail at the same moment do
// not try again in lockstep, and a failure Retry refuses ends the session.
func TestSessionBackoffJitter(t *testing.T) {
	refused := errors.New("connection refused")
	var delays [2][]time.Duration
	for i := range delays {
		attempts := 0
		s, err := NewSession(&SessionOptions{
			Dial: func(context.Context) (*Conn, error) {
				attempts++
				if attempts > 4 {
					return nil, ErrClosed // not worth retrying: the end
				}
				return nil, refused
			},
			Backoff: Backoff{Min: time.Millisecond, Max: time.Second},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Run(context.Background()); !errors.Is(err, ErrClosed) {
			t.Fatalf("Run: %v, want the refused error", err)
		}
		for {
			ev, err := s.Next(context.Background())
			if err != nil {
				if !errors.Is(err, ErrClosed) {
					t.Fatalf("Next at the end: %v", err)
				}
				break
			}
			if ev.Kind != EventDialFailed || ev.Err != refused {
				t.Fatalf("event %+v", ev)
			}
			delays[i] = append(delays[i], ev.RetryIn)
		}
	}
	if len(delays[0]) != 4 || slices.Equal(delays[0], delays[1]) {
		t.Errorf("two sessions waited %v and %v: want four waits each, not in lockstep", delays[0], delays[1])
	}
	for i, d := range delays[0] {
		base := time.Millisecond << i
		if d < base || d > base+base/4 {
			t.Errorf("wait %d: %v, want %v plus less than a quarter", i, d, base)
		}
	}
}

// TestSessionStableUptimeResetsBackoff: the backoff starts again at its
// Min only after a connection that stayed up StableUptime.
func TestSessionStableUptimeResetsBackoff(t *testing.T) {
	f := newFake(t)
	f.serve = func(ctx context.Context, s *fakeSession) { s.ws.Close(websocket.StatusGoingAway, "bye") }
	sess := runSession(t, f, func(o *SessionOptions) {
		o.Backoff = Backoff{Min: time.Millisecond, Max: 8 * time.Millisecond}
		o.StableUptime = time.Hour
	})
	var waits []time.Duration
	for len(waits) < 4 {
		ev := until(t, sess, kind(EventLost))
		waits = append(waits, ev[len(ev)-1].RetryIn)
	}
	for i, d := range waits {
		base := min(time.Millisecond<<i, 8*time.Millisecond)
		if d < base || d > base+base/4 {
			t.Errorf("wait %d after a short connection: %v, want %v plus jitter (no reset)", i, d, base)
		}
	}
}
