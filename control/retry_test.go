package control

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

func TestReconnectable(t *testing.T) {
	drop := func(r protocol.Reason) error {
		return fmt.Errorf("server ended the session: %w", r.Err())
	}
	// What a server from before reason codes sent: the message alone.
	legacy := func(r protocol.Reason) error {
		f := &protocol.Frame{Type: protocol.TError, Code: protocol.CodeUnauthorized, Message: r.Text()}
		return fmt.Errorf("server ended the session: %w", f.AsError())
	}
	cases := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("connect to ws://h:1: dial tcp 127.0.0.1:1: connect: connection refused"), true},
		{errors.New("the server closed the connection (status 1008): slow consumer: outbound queue over budget"), true},
		{&TimeoutError{After: time.Second, Op: "waiting for a keepalive pong"}, true},
		{fmt.Errorf("%w: %w", ErrNoResponse, errors.New("connection to ws://h lost: EOF")), true},
		{drop(protocol.ReasonShutdown), true},
		{drop(protocol.ReasonIdle), true},
		{drop(protocol.ReasonSlowConsumer), true},
		{protocol.ReasonShutdown.Err(), true}, // refused handshake
		{legacy(protocol.ReasonShutdown), true},
		{legacy(protocol.ReasonIdle), true},
		{legacy(protocol.ReasonSuperseded), false},
		{drop(protocol.ReasonHandshake), true},
		{drop(protocol.ReasonTooLarge), false},
		{&protocol.Error{Code: protocol.CodeUnauthorized, Message: protocol.ReasonShutdown.Text()}, false}, // text alone is not a reason
		{&protocol.Error{Code: protocol.CodeInternal, Message: "server is shutting down"}, true},
		{drop(protocol.ReasonSuperseded), false},
		{drop(protocol.ReasonMachineGone), false},
		{drop(protocol.ReasonUserRemoved), false},
		{drop("some_reason_a_newer_server_invented"), false},
		{&protocol.Error{Code: protocol.CodeUnauthorized, Message: "unknown machine key"}, false},
		{&protocol.Error{Code: protocol.CodeNotFound, Message: `no such channel "ops"`}, false},
		{fmt.Errorf("pin: %w", identity.ErrServerIDMismatch), false},
		{ErrClosed, false},
		{fmt.Errorf("connect: %w", context.Canceled), false},
	}
	for _, c := range cases {
		if got := Reconnectable(c.err); got != c.want {
			t.Errorf("Reconnectable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	// within reports whether d is base stretched by less than a quarter.
	within := func(d, base time.Duration) bool { return d >= base && d <= base+base/4 }
	var b Backoff
	var got []time.Duration
	for range 8 {
		got = append(got, b.Next())
	}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30, 30}
	for i := range want {
		if !within(got[i], want[i]*time.Second) {
			t.Fatalf("delays %v, want %v seconds plus less than a quarter", got, want)
		}
	}
	b.Reset()
	if d := b.Next(); !within(d, time.Second) {
		t.Errorf("after Reset: %v, want 1s plus jitter", d)
	}
	small := Backoff{Min: 10 * time.Millisecond, Max: 25 * time.Millisecond}
	if a, b2, c := small.Next(), small.Next(), small.Next(); !within(a, 10*time.Millisecond) || !within(b2, 20*time.Millisecond) || !within(c, 25*time.Millisecond) {
		t.Errorf("custom delays %v %v %v", a, b2, c)
	}
}

// TestBackoffJitter: clients dropped at the same moment spread out.
func TestBackoffJitter(t *testing.T) {
	seen := map[time.Duration]bool{}
	for range 20 {
		var b Backoff
		seen[b.Next()] = true
	}
	if len(seen) < 10 {
		t.Errorf("20 first delays took %d distinct values, want them spread", len(seen))
	}
}
