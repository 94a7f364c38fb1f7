package control

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/conclave/conclave/protocol"
)

// readPosts reads n frames from the client and fails the session if one
// is not a post.
func readPosts(ctx context.Context, s *fakeSession, n int) []*protocol.Frame {
	var posts []*protocol.Frame
	for range n {
		fr, err := s.read(ctx)
		if err != nil {
			return nil
		}
		if fr.Type != protocol.TChannelMsg || fr.Body == nil {
			s.fail(ctx, protocol.CodeMalformed, "expected a post, got "+fr.Type)
			return nil
		}
		posts = append(posts, fr)
	}
	return posts
}

// postsOf returns the bodies of the posts the fake received.
func (f *fakeServer) postsOf() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, fr := range f.got {
		if fr.Type == protocol.TChannelMsg {
			out = append(out, *fr.Body)
		}
	}
	return out
}

// TestPipelineAllOnTheWireAcksOutOfOrder: the fake reads every post
// before it acks any (a client that waited for an ack would wait for
// ever), then acks them in reverse order, each with the seq of its body;
// every reply reaches the post it answers, in send order.
func TestPipelineAllOnTheWireAcksOutOfOrder(t *testing.T) {
	const n = 50
	f := newFake(t)
	f.serve = func(ctx context.Context, s *fakeSession) {
		posts := readPosts(ctx, s, n)
		for i := len(posts) - 1; i >= 0; i-- {
			var seq uint64
			fmt.Sscanf(*posts[i].Body, "post %d", &seq)
			if s.send(ctx, &protocol.Frame{Type: protocol.TAck, ID: posts[i].ID, Seq: seq}) != nil {
				return
			}
		}
		s.read(ctx)
	}
	c := dialFake(t, f, nil)
	var got []string
	p := NewPipeline(c, n, func(req, reply *protocol.Frame, err error) error {
		if err != nil {
			return err
		}
		got = append(got, fmt.Sprintf("%s=%d", *req.Body, reply.Seq))
		return nil
	})
	var want []string
	for i := range n {
		if err := p.Send(context.Background(), &protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: body(fmt.Sprintf("post %d", i))}); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
		want = append(want, fmt.Sprintf("post %d=%d", i, i))
	}
	if p.InFlight() != n {
		t.Errorf("InFlight = %d, want %d", p.InFlight(), n)
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("replies = %v\nwant %v", got, want)
	}
	if p.InFlight() != 0 {
		t.Errorf("InFlight after Flush = %d", p.InFlight())
	}
}

// TestPipelineWindow: with a window of 4, the fifth post is not written
// before the first reply has been handed on, and the posts reach the
// server in send order.
func TestPipelineWindow(t *testing.T) {
	const window, n = 4, 10
	f := newFake(t)
	// The fake acks the oldest post for each new one it reads, so the
	// client's posts are bounded only by the window.
	f.serve = func(ctx context.Context, s *fakeSession) {
		posts := readPosts(ctx, s, window)
		for read := window; len(posts) > 0; read++ {
			if s.send(ctx, &protocol.Frame{Type: protocol.TAck, ID: posts[0].ID}) != nil {
				return
			}
			if read >= n {
				posts = posts[1:] // all read: ack the rest
				continue
			}
			// The next post can only come once this ack is handed on.
			more := readPosts(ctx, s, 1)
			if more == nil {
				return
			}
			posts = append(posts[1:], more...)
		}
	}
	c := dialFake(t, f, nil)
	replied := 0
	var onServer []int
	p := NewPipeline(c, window, func(req, reply *protocol.Frame, err error) error {
		if err != nil {
			return err
		}
		replied++
		onServer = append(onServer, len(f.postsOf()))
		return nil
	})
	for i := range n {
		if err := p.Send(context.Background(), &protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: body(fmt.Sprint(i))}); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	// The last window posts are not handed on yet.
	if replied != n-window {
		t.Fatalf("%d replies, want %d", replied, n-window)
	}
	for i, seen := range onServer[:n-window] {
		if seen != window+i {
			t.Errorf("when reply %d was handed on the server had %d posts, want %d", i, seen, window+i)
		}
	}
	if err := p.Flush(context.Background()); err != nil || replied != n {
		t.Fatalf("Flush: %v; %d replies, want %d", err, replied, n)
	}
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprint(i)
	}
	if got := f.postsOf(); !slices.Equal(got, want) {
		t.Errorf("posts on the server = %v, want %v", got, want)
	}
}

// TestPipelineConnectionLost: the server reads three posts and drops the
// connection; each of them fails with ErrNoResponse and the reason.
func TestPipelineConnectionLost(t *testing.T) {
	f := newFake(t)
	f.serve = func(ctx context.Context, s *fakeSession) {
		readPosts(ctx, s, 3)
		s.ws.CloseNow()
	}
	c := dialFake(t, f, nil)
	var errs []error
	p := NewPipeline(c, 8, func(req, reply *protocol.Frame, err error) error {
		errs = append(errs, err)
		return nil
	})
	for i := range 3 {
		if err := p.Send(context.Background(), &protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: body(fmt.Sprint(i))}); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if len(errs) != 3 {
		t.Fatalf("%d replies, want 3", len(errs))
	}
	for i, err := range errs {
		if !errors.Is(err, ErrNoResponse) || !strings.Contains(err.Error(), "lost") {
			t.Errorf("post %d: err = %v, want ErrNoResponse with the reason", i, err)
		}
	}
	err := p.Send(context.Background(), &protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: body("late")})
	if !errors.Is(err, ErrNoResponse) {
		t.Errorf("Send after the end: %v, want ErrNoResponse", err)
	}
}

// TestPipelineErrorReplyAndStop: an error reply reaches the reply func as
// a *protocol.Error; what the reply func returns stops Flush, and a later
// Flush goes on.
func TestPipelineErrorReplyAndStop(t *testing.T) {
	f := newFake(t)
	f.serve = func(ctx context.Context, s *fakeSession) {
		posts := readPosts(ctx, s, 3)
		for i, p := range posts {
			reply := &protocol.Frame{Type: protocol.TAck, ID: p.ID, Seq: uint64(i + 1)}
			if i == 1 {
				reply = &protocol.Frame{Type: protocol.TError, ID: p.ID, Code: protocol.CodeRateLimited, Message: "too many messages; retry after 5 ms"}
			}
			if s.send(ctx, reply) != nil {
				return
			}
		}
		s.read(ctx)
	}
	c := dialFake(t, f, nil)
	stop := errors.New("stop")
	var seen []string
	p := NewPipeline(c, 8, func(req, reply *protocol.Frame, err error) error {
		var pe *protocol.Error
		if errors.As(err, &pe) {
			seen = append(seen, *req.Body+":"+string(pe.Code))
			return stop
		}
		if err != nil {
			return err
		}
		seen = append(seen, fmt.Sprintf("%s:%d", *req.Body, reply.Seq))
		return nil
	})
	for _, b := range []string{"a", "b", "c"} {
		if err := p.Send(context.Background(), &protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: body(b)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(context.Background()); err != stop {
		t.Fatalf("Flush = %v, want the reply func's error", err)
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatalf("second Flush = %v", err)
	}
	if want := []string{"a:1", "b:rate_limited", "c:3"}; !slices.Equal(seen, want) {
		t.Errorf("replies = %v, want %v", seen, want)
	}
}

// TestCallWait: Send returns before the reply, Wait returns it (also a
// second time), and Request still works beside pending calls.
func TestCallWait(t *testing.T) {
	f := newFake(t)
	release := make(chan struct{})
	f.serve = func(ctx context.Context, s *fakeSession) {
		post := readPosts(ctx, s, 1)
		if post == nil {
			return
		}
		ping, err := s.read(ctx)
		if err != nil {
			return
		}
		s.send(ctx, &protocol.Frame{Type: protocol.TPong, ID: ping.ID})
		<-release
		s.send(ctx, &protocol.Frame{Type: protocol.TAck, ID: post[0].ID, Seq: 7})
		s.read(ctx)
	}
	c := dialFake(t, f, nil)
	call, err := c.Send(context.Background(), &protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: body("x")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Request(context.Background(), &protocol.Frame{Type: protocol.TPing}); err != nil {
		t.Fatalf("ping beside a pending post: %v", err)
	}
	select {
	case <-call.Done():
		t.Fatal("the call is done before its ack was sent")
	default:
	}
	close(release)
	for range 2 {
		r, err := call.Wait(context.Background())
		if err != nil || r.Seq != 7 {
			t.Fatalf("Wait = %+v, %v; want the ack with seq 7", r, err)
		}
	}
}
