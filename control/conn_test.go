package control

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/conclave/conclave/leakcheck"
	"github.com/conclave/conclave/protocol"
)

func body(s string) *string { return &s }

// nextEvent waits for the next unprompted frame.
func nextEvent(t *testing.T, c *Conn) *protocol.Frame {
	t.Helper()
	select {
	case f, ok := <-c.Events():
		if !ok {
			t.Fatalf("Events closed; Err() = %v", c.Err())
		}
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return nil
}

func TestSeveralFramesInOneMessage(t *testing.T) {
	f := newFake(t)
	// The established frame shares its message with a delivery, and a
	// reply shares one with deliveries on both sides of it.
	f.established = func(s *fakeSession) []*protocol.Frame {
		return []*protocol.Frame{
			{Type: protocol.TEstablished, Path: s.path, ServerID: f.id},
			{Type: protocol.TChannelMsg, Channel: "ops", From: "bob/m/s", Body: body("first"), Seq: 1},
		}
	}
	f.serve = func(ctx context.Context, s *fakeSession) {
		req, err := s.read(ctx)
		if err != nil {
			return
		}
		s.send(ctx,
			&protocol.Frame{Type: protocol.TWhisper, From: "bob/m/s", Target: s.path, Body: body("psst")},
			&protocol.Frame{Type: protocol.TPresence, ID: req.ID, Sessions: []string{s.path, "bob/m/s"}},
			&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", From: "bob/m/s", Body: body("second"), Seq: 2},
		)
		s.read(ctx)
	}
	c := dialFake(t, f, nil)
	reply, err := c.Request(context.Background(), &protocol.Frame{Type: protocol.TWho})
	if err != nil {
		t.Fatalf("Request: %v", err)
	}
	if reply.Type != protocol.TPresence || len(reply.Sessions) != 2 {
		t.Errorf("reply = %+v, want a presence with 2 sessions", reply)
	}
	for _, want := range []string{"first", "psst", "second"} {
		if ev := nextEvent(t, c); ev.Body == nil || *ev.Body != want {
			t.Errorf("event = %+v, want body %q", ev, want)
		}
	}
}

func TestRequestRepliesMatchedByID(t *testing.T) {
	f := newFake(t)
	f.serve = func(ctx context.Context, s *fakeSession) {
		a, err := s.read(ctx)
		if err != nil {
			return
		}
		b, err := s.read(ctx)
		if err != nil {
			return
		}
		if a.ID == "" || a.ID == b.ID {
			s.fail(ctx, protocol.CodeMalformed, "ids "+a.ID+", "+b.ID)
			return
		}
		// Answer in reverse order with a notice in between, each in its
		// own message.
		answer := func(r *protocol.Frame) *protocol.Frame {
			return &protocol.Frame{Type: protocol.TJoined, ID: r.ID, Channel: r.Channel}
		}
		s.send(ctx, answer(b))
		s.send(ctx, &protocol.Frame{Type: protocol.TRenamed, Channel: "old", NewName: "new"})
		s.send(ctx, answer(a))
		s.read(ctx)
	}
	c := dialFake(t, f, nil)
	var wg sync.WaitGroup
	got := make([]string, 2)
	errs := make([]error, 2)
	for i, ch := range []string{"one", "two"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.Request(context.Background(), &protocol.Frame{Type: protocol.TJoin, Channel: ch})
			errs[i] = err
			if err == nil {
				got[i] = r.Channel
			}
		}()
	}
	wg.Wait()
	for i, want := range []string{"one", "two"} {
		if errs[i] != nil || got[i] != want {
			t.Errorf("request %d: got %q, %v; want %q", i, got[i], errs[i], want)
		}
	}
	if ev := nextEvent(t, c); ev.Type != protocol.TRenamed || ev.NewName != "new" {
		t.Errorf("event = %+v, want renamed", ev)
	}
}

func TestRequestErrorReply(t *testing.T) {
	c := dialFake(t, newFake(t), nil)
	_, err := c.Request(context.Background(), &protocol.Frame{Type: protocol.TJoin, Channel: "x"})
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeNotFound {
		t.Fatalf("Request error = %v, want not_found", err)
	}
	// The connection is still usable.
	if _, err := c.Request(context.Background(), &protocol.Frame{Type: protocol.TPing}); err != nil {
		t.Fatalf("ping after an error reply: %v", err)
	}
}

func TestRequestDoesNotModifyFrame(t *testing.T) {
	c := dialFake(t, newFake(t), nil)
	f := &protocol.Frame{Type: protocol.TPing}
	if _, err := c.Request(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	if f.ID != "" {
		t.Errorf("Request set the caller's frame id to %q", f.ID)
	}
}

func TestRequestTimesOut(t *testing.T) {
	f := newFake(t)
	f.serve = func(ctx context.Context, s *fakeSession) {
		for {
			fr, err := s.read(ctx)
			if err != nil {
				return
			}
			if fr.Type == protocol.TPing {
				s.send(ctx, &protocol.Frame{Type: protocol.TPong, ID: fr.ID})
			} // anything else: never answered
		}
	}
	c := dialFake(t, f, func(o *Options) { o.ReplyTimeout = 200 * time.Millisecond })
	_, err := c.Request(context.Background(), &protocol.Frame{Type: protocol.TWho})
	var te *TimeoutError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "timed out after 200ms waiting for a server response") {
		t.Fatalf("Request error = %v, want a timeout", err)
	}
	// A timed-out request leaves the connection up.
	if _, err := c.Request(context.Background(), &protocol.Frame{Type: protocol.TPing}); err != nil {
		t.Fatalf("ping after a timeout: %v", err)
	}
}

func TestRequestCallerContext(t *testing.T) {
	f := newFake(t)
	f.serve = func(ctx context.Context, s *fakeSession) {
		for {
			if _, err := s.read(ctx); err != nil {
				return
			}
		}
	}
	c := dialFake(t, f, nil)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := c.Request(ctx, &protocol.Frame{Type: protocol.TWho}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Request error = %v, want context.Canceled", err)
	}
}

func TestServerDropsSession(t *testing.T) {
	f := newFake(t)
	f.serve = func(ctx context.Context, s *fakeSession) {
		if _, err := s.read(ctx); err != nil { // a request that gets no reply
			return
		}
		s.send(ctx, protocol.ErrorFrame("", protocol.ReasonSuperseded.Err()))
		s.ws.Close(websocket.StatusPolicyViolation, "superseded")
	}
	c := dialFake(t, f, nil)
	_, err := c.Request(context.Background(), &protocol.Frame{Type: protocol.TWho})
	if !errors.Is(err, ErrNoResponse) || !strings.Contains(err.Error(), "connection closed before a response arrived") ||
		!strings.Contains(err.Error(), "superseded") {
		t.Fatalf("Request error = %v, want ErrNoResponse with the reason", err)
	}
	ev := nextEvent(t, c)
	if ev.Type != protocol.TError || protocol.Reason(ev.Reason) != protocol.ReasonSuperseded || ev.Message != protocol.ReasonSuperseded.Text() {
		t.Errorf("event = %+v, want the drop notice", ev)
	}
	<-c.Done()
	var pe *protocol.Error
	if err := c.Err(); !errors.As(err, &pe) || pe.Code != protocol.CodeUnauthorized || pe.Reason != protocol.ReasonSuperseded || !strings.Contains(err.Error(), "server ended the session") {
		t.Errorf("Err() = %v, want the server's reason", err)
	}
	if _, ok := <-c.Events(); ok {
		t.Error("Events still open after the end")
	}
	if _, err := c.Request(context.Background(), &protocol.Frame{Type: protocol.TPing}); !errors.Is(err, ErrNoResponse) {
		t.Errorf("Request after the end = %v, want ErrNoResponse", err)
	}
}

func TestServerClosesConnection(t *testing.T) {
	f := newFake(t)
	f.serve = func(ctx context.Context, s *fakeSession) {
		s.ws.Close(websocket.StatusGoingAway, "server shutting down")
	}
	c := dialFake(t, f, nil)
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("connection did not end")
	}
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "server shutting down") {
		t.Errorf("Err() = %v, want the close reason", err)
	}
}

func TestCloseStopsReader(t *testing.T) {
	c := dialFake(t, newFake(t), nil)
	if leakcheck.Goroutines(connMarks...) == "" {
		t.Fatal("no reader goroutine while connected")
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	select {
	case <-c.Done():
	default:
		t.Error("Done not closed after Close")
	}
	if _, ok := <-c.Events(); ok {
		t.Error("Events not closed after Close")
	}
	if !errors.Is(c.Err(), ErrClosed) {
		t.Errorf("Err() = %v, want ErrClosed", c.Err())
	}
	if _, err := c.Request(context.Background(), &protocol.Frame{Type: protocol.TPing}); !errors.Is(err, ErrClosed) {
		t.Errorf("Request after Close = %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close() = %v", err)
	}
	if s := leakcheck.WaitGone(2*time.Second, connMarks...); s != "" {
		t.Errorf("goroutines left after Close:\n%s", s)
	}
}

func TestCloseWithUndrainedEvents(t *testing.T) {
	f := newFake(t)
	flooded := make(chan struct{})
	f.serve = func(ctx context.Context, s *fakeSession) {
		for i := range eventBuffer + 50 {
			err := s.send(ctx, &protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", From: "b/m/s", Body: body("x"), Seq: uint64(i + 1)})
			if err != nil {
				return
			}
		}
		close(flooded)
		for {
			if _, err := s.read(ctx); err != nil {
				return
			}
		}
	}
	c := dialFake(t, f, func(o *Options) { o.Keepalive = 10 * time.Millisecond })
	<-flooded
	start := time.Now()
	c.Close()
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("Close took %v with a full event buffer", el)
	}
}

func TestKeepalive(t *testing.T) {
	f := newFake(t)
	var pings atomic.Int32
	f.serve = func(ctx context.Context, s *fakeSession) {
		for {
			fr, err := s.read(ctx)
			if err != nil {
				return
			}
			if fr.Type == protocol.TPing && fr.ID != "" {
				pings.Add(1)
				s.send(ctx, &protocol.Frame{Type: protocol.TPong, ID: fr.ID})
			}
		}
	}
	c := dialFake(t, f, func(o *Options) { o.Keepalive = 20 * time.Millisecond })
	deadline := time.Now().Add(5 * time.Second)
	for pings.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d pings in 5s, want at least 3", pings.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c.Err() != nil {
		t.Errorf("Err() = %v while pongs arrive", c.Err())
	}
}

func TestKeepaliveTimeoutEndsConnection(t *testing.T) {
	f := newFake(t)
	f.serve = func(ctx context.Context, s *fakeSession) {
		for {
			if _, err := s.read(ctx); err != nil {
				return
			}
		}
	}
	c := dialFake(t, f, func(o *Options) {
		o.Keepalive = 20 * time.Millisecond
		o.ReplyTimeout = 100 * time.Millisecond
	})
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("connection survived unanswered pings")
	}
	var te *TimeoutError
	if err := c.Err(); !errors.As(err, &te) || !strings.Contains(err.Error(), "keepalive") {
		t.Errorf("Err() = %v, want a keepalive timeout", err)
	}
}

func TestLargeMessage(t *testing.T) {
	big := strings.Repeat("x", 200<<10) // well over coder/websocket's 32 KiB default
	f := newFake(t)
	f.serve = func(ctx context.Context, s *fakeSession) {
		s.send(ctx, &protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", From: "b/m/s", Body: &big})
		s.read(ctx)
	}
	c := dialFake(t, f, nil)
	if ev := nextEvent(t, c); ev.Body == nil || len(*ev.Body) != len(big) {
		t.Fatalf("large delivery lost; Err() = %v", c.Err())
	}
}

func TestUndecodableFrameSkipped(t *testing.T) {
	f := newFake(t)
	f.serve = func(ctx context.Context, s *fakeSession) {
		req, err := s.read(ctx)
		if err != nil {
			return
		}
		msg := `{"type":"from_the_future"}` + "\n" + `not json` + "\n" +
			string(protocol.MustEncode(&protocol.Frame{Type: protocol.TPong, ID: req.ID}))
		s.ws.Write(ctx, websocket.MessageText, []byte(msg))
		s.read(ctx)
	}
	c := dialFake(t, f, nil)
	if _, err := c.Request(context.Background(), &protocol.Frame{Type: protocol.TPing}); err != nil {
		t.Fatalf("Request: %v", err)
	}
}

// The read limit follows established.max_message: a message larger than
// the server announced ends the connection with an error naming the
// announced size, and the body cap is reported.
func TestReadLimitFromEstablished(t *testing.T) {
	const announced = 2 << 20
	f := newFake(t)
	f.established = func(s *fakeSession) []*protocol.Frame {
		return []*protocol.Frame{{Type: protocol.TEstablished, Path: s.path, ServerID: f.id, MaxBody: 1000, MaxMessage: announced}}
	}
	f.serve = func(ctx context.Context, s *fakeSession) {
		big := strings.Repeat("x", announced)
		s.send(ctx, &protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", From: "bob/m/s", Body: &big, Seq: 1})
		s.read(ctx)
	}
	c := dialFake(t, f, nil)
	if c.MaxBody() != 1000 {
		t.Errorf("MaxBody() = %d, want 1000", c.MaxBody())
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a message over the announced limit did not end the connection")
	}
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "larger than 2097152 bytes") {
		t.Fatalf("Err() = %v, want the announced limit named", err)
	}
}
