package control

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conclave/conclave/protocol"
)

// subscribeFake subscribes to #ops on f as alice/wa.
func subscribeFake(t *testing.T, f *fakeServer, o SubscribeOptions) *Subscription {
	t.Helper()
	key := newKey(t)
	f.enroll(key.Public().(ed25519.PublicKey), "alice/wa")
	o.Channel = "ops"
	o.Backoff = Backoff{Min: 10 * time.Millisecond, Max: 20 * time.Millisecond}
	o.Dial = func(ctx context.Context) (*Conn, error) {
		return Dial(ctx, &Options{URL: f.url, Key: key, Session: "s1", PinnedServerID: f.id, DialTimeout: 5 * time.Second})
	}
	s, err := Subscribe(context.Background(), &o)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func delivery(seq uint64) *protocol.Frame {
	body := fmt.Sprint("m", seq)
	return &protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", From: "bob/wb/s", Body: &body, TsMs: int64(seq), Seq: seq}
}

// TestSubscriptionOverflowResumesFromHistory: a reader that falls more
// than Buffer events behind makes the subscription drop its connection
// (bounded memory) and, once reconnected, read what it dropped from the
// history: every message still comes once, in order.
func TestSubscriptionOverflowResumesFromHistory(t *testing.T) {
	f := newFake(t)
	var conns atomic.Int32
	dropped := make(chan struct{}) // the client closed the first connection
	f.serve = func(ctx context.Context, s *fakeSession) {
		n := conns.Add(1) - 1
		j, err := s.read(ctx)
		if err != nil || j.Type != protocol.TJoin {
			return
		}
		switch n {
		case 0:
			s.send(ctx, &protocol.Frame{Type: protocol.TJoined, ID: j.ID, Channel: "ops", Seq: 10})
			for seq := uint64(11); seq <= 60; seq++ {
				if s.send(ctx, delivery(seq)) != nil {
					return
				}
			}
			s.read(ctx) // until the client gives up on this connection
			close(dropped)
		default:
			s.send(ctx, &protocol.Frame{Type: protocol.TJoined, ID: j.ID, Channel: "ops", Seq: 60})
			r, err := s.read(ctx)
			if err != nil || r.Type != protocol.TReadSince || r.AfterSeq == nil || r.UntilSeq == nil || *r.UntilSeq != 60 {
				t.Errorf("after the overflow: %+v, want read_since after the last message until 60", r)
				return
			}
			h := &protocol.Frame{Type: protocol.THistory, ID: r.ID, Channel: "ops", NextSeq: 60}
			for seq := *r.AfterSeq + 1; seq <= 60; seq++ {
				d := delivery(seq)
				h.Messages = append(h.Messages, protocol.HistoryMessage{Seq: seq, From: d.From, TsMs: d.TsMs, Body: d.Body})
			}
			s.send(ctx, h)
			s.read(ctx)
		}
	}
	sub := subscribeFake(t, f, SubscribeOptions{Buffer: 8})
	// Fall behind: the first connection sends 50 deliveries at once, and
	// nobody reads them.
	select {
	case <-dropped:
	case <-time.After(10 * time.Second):
		t.Fatal("the subscription kept a connection whose events went over its buffer")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	want, lost := uint64(11), false
	for want <= 60 {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("Next: %v (waiting for seq %d)", err, want)
		}
		switch ev.Kind {
		case EventMessage:
			if ev.Frame.Seq != want {
				t.Fatalf("message %d, want %d", ev.Frame.Seq, want)
			}
			want++
		case EventLost:
			if !errors.Is(ev.Err, ErrOverflow) {
				t.Fatalf("lost: %v, want ErrOverflow", ev.Err)
			}
			lost = true
		}
	}
	if !lost {
		t.Error("the reader never fell behind")
	}
	sub.Close()
	if _, err := sub.Next(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close: %v, want ErrClosed", err)
	}
}

// TestSubscriptionEndsOnRefusal: a drop that will not go away ends the
// subscription with the server's reason; nothing is retried.
func TestSubscriptionEndsOnRefusal(t *testing.T) {
	f := newFake(t)
	var conns atomic.Int32
	f.serve = func(ctx context.Context, s *fakeSession) {
		conns.Add(1)
		j, err := s.read(ctx)
		if err != nil {
			return
		}
		s.send(ctx, &protocol.Frame{Type: protocol.TJoined, ID: j.ID, Channel: "ops", Seq: 3}, delivery(4),
			protocol.ErrorFrame("", protocol.ReasonMachineGone.Err()))
		s.ws.CloseNow()
	}
	sub := subscribeFake(t, f, SubscribeOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	var ev Event
	for err == nil {
		ev, err = sub.Next(ctx)
		if err == nil && ev.Kind == EventMessage && ev.Frame.Seq != 4 {
			t.Fatalf("message %+v", ev.Frame)
		}
	}
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Reason != protocol.ReasonMachineGone {
		t.Errorf("ended with %v, want the machine_revoked drop", err)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1 (no retry)", n)
	}
}

// TestSubscriptionEndsOnRefusedRejoin: after a reconnect, a join the
// server refuses for good ends the subscription, naming the channel; no
// further connection is made.
func TestSubscriptionEndsOnRefusedRejoin(t *testing.T) {
	f := newFake(t)
	var conns atomic.Int32
	f.serve = func(ctx context.Context, s *fakeSession) {
		n := conns.Add(1)
		j, err := s.read(ctx)
		if err != nil {
			return
		}
		if n == 1 {
			s.send(ctx, &protocol.Frame{Type: protocol.TJoined, ID: j.ID, Channel: "ops", Seq: 3})
			s.ws.CloseNow() // a lost connection: worth a retry
			return
		}
		s.send(ctx, protocol.ErrorFrame(j.ID, &protocol.Error{Code: protocol.CodeUnauthorized, Message: "banned from ops"}))
		s.read(ctx)
	}
	sub := subscribeFake(t, f, SubscribeOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var kinds []EventKind
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			var pe *protocol.Error
			if !errors.As(err, &pe) || err.Error() != "join #ops again: unauthorized: banned from ops" {
				t.Fatalf("ended with %v, want the refused rejoin", err)
			}
			break
		}
		kinds = append(kinds, ev.Kind)
	}
	if len(kinds) != 1 || kinds[0] != EventLost {
		t.Errorf("events %v, want one EventLost", kinds)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}
