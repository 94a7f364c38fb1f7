package server

import (
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/protocol"
)

// TestTwoSessionsOneHandle: the same process (instance) takes back its
// own session; another process with a defaulted handle takes the next
// suffix and leaves the holder alone; another process with a chosen
// handle is refused, naming the holder; a client without an instance
// supersedes as always.
func TestTwoSessionsOneHandle(t *testing.T) {
	env := newTestEnv(t, Config{})
	key := newKey(t)
	if c, f := env.handshake(key, "enrol", &protocol.Frame{Username: "aaron", Machine: "ws"}); f.Type != protocol.TEstablished {
		t.Fatalf("register: %+v", f)
	} else {
		c.conn.CloseNow()
	}
	hello := func(session, instance string, defaulted bool) (*client, *protocol.Frame) {
		t.Helper()
		return env.handshakeHello(key, &protocol.Frame{Type: protocol.THello, Version: 1, Session: session,
			Client: "conclave-bridge/test", Instance: instance, SessionDefaulted: defaulted}, nil)
	}
	established := func(session, instance string, defaulted bool, want string) *client {
		t.Helper()
		c, f := hello(session, instance, defaulted)
		if f.Type != protocol.TEstablished || f.Path != want {
			t.Fatalf("hello %s (instance %q, defaulted %v): got %+v, want established as %s", session, instance, defaulted, f, want)
		}
		return c
	}
	who := func(c *client) string {
		t.Helper()
		return strings.Join(c.ok(&protocol.Frame{Type: protocol.TWho}).Sessions, ",")
	}

	first := established("fleet", "proc-a", true, "aaron/ws/fleet")
	second := established("fleet", "proc-b", true, "aaron/ws/fleet-2")
	third := established("fleet", "proc-c", true, "aaron/ws/fleet-3")
	first.quiet(200 * time.Millisecond) // no notice of any kind to the holder
	if got := who(first); got != "aaron/ws/fleet,aaron/ws/fleet-2,aaron/ws/fleet-3" {
		t.Fatalf("who = %s", got)
	}

	// proc-b's connection went half-open; proc-b dials again and takes
	// back fleet-2, not fleet-4. The others hear nothing.
	secondAgain := established("fleet", "proc-b", true, "aaron/ws/fleet-2")
	if last := second.waitClosed(); last == nil || last.Reason != string(protocol.ReasonSuperseded) {
		t.Fatalf("proc-b's old session ended with %+v, want superseded", last)
	}
	first.quiet(100 * time.Millisecond)
	third.quiet(100 * time.Millisecond)

	// The holder itself reconnecting takes back the bare handle.
	firstAgain := established("fleet", "proc-a", true, "aaron/ws/fleet")
	if last := first.waitClosed(); last == nil || last.Reason != string(protocol.ReasonSuperseded) {
		t.Fatalf("proc-a's old session ended with %+v, want superseded", last)
	}

	// Once fleet-2 is gone, a newcomer gets the first free suffix.
	secondAgain.conn.CloseNow()
	for deadline := time.Now().Add(10 * time.Second); strings.Contains(who(firstAgain), "fleet-2"); {
		if time.Now().After(deadline) {
			t.Fatal("fleet-2 still live after its connection closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	established("fleet", "proc-d", true, "aaron/ws/fleet-2")

	// A chosen handle held by another process is refused, naming it.
	reviewer := established("reviewer", "proc-a", false, "aaron/ws/reviewer")
	c, f := hello("reviewer", "proc-e", false)
	if f.Type != protocol.TError || f.Code != protocol.CodeConflict ||
		!strings.Contains(f.Message, `session handle "reviewer" is in use by another process of this machine: aaron/ws/reviewer (conclave-bridge/test, connected `) {
		t.Fatalf("a chosen handle held by another process: got %+v, want a conflict naming the holder", f)
	}
	c.waitClosed()
	reviewer.quiet(100 * time.Millisecond)
	if got := who(reviewer); !strings.Contains(got, "aaron/ws/reviewer") {
		t.Fatalf("the holder of reviewer is gone: %s", got)
	}

	// A client that sends no instance (an older one) supersedes, as
	// always, whatever the holder sent.
	established("reviewer", "", false, "aaron/ws/reviewer")
	if last := reviewer.waitClosed(); last == nil || last.Reason != string(protocol.ReasonSuperseded) {
		t.Fatalf("an instance-less newcomer: holder ended with %+v, want superseded", last)
	}
}

func TestHelloInstanceValidation(t *testing.T) {
	tests := []struct {
		name      string
		instance  string
		defaulted bool
		want      string
	}{
		{"defaulted without instance", "", true, "session_defaulted needs an instance"},
		{"too long", strings.Repeat("x", protocol.MaxInstanceLen+1), false, "instance is longer than 64 bytes"},
		{"space", "a b", false, "instance must be printable ASCII without spaces"},
		{"non-ASCII", "é", false, "instance must be printable ASCII without spaces"},
	}
	env := newTestEnv(t, Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := env.dialRaw()
			c.sendFrame(&protocol.Frame{Type: protocol.THello, Version: 1, Session: "s", Instance: tt.instance, SessionDefaulted: tt.defaulted})
			f := c.next()
			if f.Type != protocol.TError || f.Code != protocol.CodeMalformed || f.Message != tt.want {
				t.Fatalf("got %+v, want malformed %q", f, tt.want)
			}
		})
	}
}

func TestSuffixed(t *testing.T) {
	tests := []struct {
		base string
		n    int
		want string
	}{
		{"fleet", 2, "fleet-2"},
		{"fleet", 12, "fleet-12"},
		{strings.Repeat("x", 64), 2, strings.Repeat("x", 62) + "-2"},
		{strings.Repeat("é", 32), 10, strings.Repeat("é", 30) + "-10"},
		{strings.Repeat("x", 61) + " ab", 2, strings.Repeat("x", 61) + "-2"},
	}
	for _, tt := range tests {
		got := suffixed(tt.base, tt.n)
		if got != tt.want || protocol.CheckName(got) != nil {
			t.Errorf("suffixed(%q, %d) = %q, want %q", tt.base, tt.n, got, tt.want)
		}
	}
}
