package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/protocol"
)

// writeLoops counts the goroutines running a session's writeLoop.
func writeLoops() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "server.(*session).writeLoop")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// waitFor waits until cond holds, failing the test if it does not within
// 10 s (a bound for a stuck run, not a measure of speed).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after 10 s", what)
		}
	}
}

// An idle session holds no writer goroutine: its writeLoop ends once the
// queue is empty, the next frame queued starts another, and a session
// that dies while idle still gets its final frame and is closed, with no
// goroutine left behind.
func TestIdleSessionWriterStartsAgain(t *testing.T) {
	env := newTestEnv(t, Config{})
	a := env.register("aaron", "wa", "s")
	b := env.register("bea", "wb", "s")
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	a.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	b.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	idle := func() bool { return writeLoops() == 0 }

	for i := range 3 {
		waitFor(t, "idle (no writeLoop)", idle)
		text := "after idle " + string(rune('0'+i))
		if r := a.ok(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: body(text)}); r.Type != protocol.TAck {
			t.Fatalf("post reply = %+v", r)
		}
		if m := b.nextOfType(protocol.TChannelMsg); *m.Body != text {
			t.Fatalf("delivery = %+v, want %q", m, text)
		}
	}

	// Superseded while idle: the old session gets its reason and is closed.
	waitFor(t, "idle (no writeLoop)", idle)
	b2 := env.login(b.key, "s")
	if last := b.waitClosed(); last == nil || protocol.Reason(last.Reason) != protocol.ReasonSuperseded {
		t.Fatalf("superseded session's last frame = %+v", last)
	}
	b2.ok(&protocol.Frame{Type: protocol.TPing})

	// Closed by its client while idle: the session ends and leaves nothing.
	waitFor(t, "idle (no writeLoop)", idle)
	a.conn.Close(1000, "")
	waitFor(t, "gone", func() bool { return env.srv.hub.lookup(a.path) == nil })
	b2.conn.Close(1000, "")
	waitFor(t, "gone", func() bool { return env.srv.hub.lookup(b2.path) == nil })
	waitFor(t, "without writeLoops", idle)
}

// A client may send its first frames right behind the upgrade request,
// before it has read the 101: the bytes net/http has read past the
// request are kept when the connection gets its own, smaller buffers.
func TestFramesBehindUpgradeRequestAreRead(t *testing.T) {
	env := newTestEnv(t, Config{})
	addr := strings.TrimPrefix(env.ts.URL, "http://")
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	hello, _ := json.Marshal(&protocol.Frame{Type: protocol.THello, Version: 1, Session: "s"})
	ping, _ := json.Marshal(&protocol.Frame{Type: protocol.TPing, ID: strings.Repeat("p", 2000)})
	var req bytes.Buffer
	req.WriteString("GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Protocol: " + protocol.Subprotocol + "\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	req.Write(maskedText(hello))
	req.Write(maskedText(ping)) // more than the connection's read buffer, all of it early
	if _, err := conn.Write(req.Bytes()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade status %d", resp.StatusCode)
	}
	var got []*protocol.Frame
	for len(got) < 2 {
		msg, err := readServerMessage(br)
		if err != nil {
			t.Fatalf("after %d frames: %v", len(got), err)
		}
		fs, err := protocol.DecodeMessage(msg)
		if err != nil {
			t.Fatalf("decode %q: %v", msg, err)
		}
		got = append(got, fs...)
	}
	if got[0].Type != protocol.TChallenge {
		t.Fatalf("first frame = %+v, want a challenge", got[0])
	}
	// The ping before auth is refused, which shows it was read whole.
	if got[1].Type != protocol.TError {
		t.Fatalf("second frame = %+v, want the refusal of the early ping", got[1])
	}
}

// readServerMessage reads one unmasked, unfragmented server message.
func readServerMessage(br *bufio.Reader) ([]byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return nil, err
		}
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return nil, err
		}
		n = binary.BigEndian.Uint64(l[:])
	}
	msg := make([]byte, n)
	_, err := io.ReadFull(br, msg)
	return msg, err
}
