package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"github.com/coder/websocket"

	"github.com/conclave/conclave/control"
	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

func str(s string) *string { return &s }

func TestTailerEvents(t *testing.T) {
	var out, errOut bytes.Buffer
	g := &Globals{Stdout: &out, Stderr: &errOut, Logger: slog.New(slog.DiscardHandler)}
	tl := &tailer{g: g, channel: "ops"}
	msg := func(f *protocol.Frame) control.Event { return control.Event{Kind: control.EventMessage, Frame: f} }
	frame := func(f *protocol.Frame) control.Event { return control.Event{Kind: control.EventFrame, Frame: f} }
	events := []control.Event{
		msg(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", From: "a/m/s", Body: str("new\x1b[2J"), Seq: 5}),
		frame(&protocol.Frame{Type: protocol.TWhisper, From: "b/m/s", Target: "me/m/t", Body: str("psst")}),
		msg(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", From: "a/m/s", Sealed: &protocol.Sealed{Ciphertext: []byte{1}}, Seq: 6}),
		{Kind: control.EventGap, Frame: &protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Seq: 7}},
		frame(&protocol.Frame{Type: protocol.TUnsubscribed, Channel: "other", Reason: "kicked"}),
		{Kind: control.EventRenamed, Frame: &protocol.Frame{Type: protocol.TRenamed, Channel: "ops", NewName: "ops2"}},
		msg(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops2", From: "a/m/s", Body: str("renamed"), Seq: 8}),
		{Kind: control.EventLost, Err: errors.New("server ended the session: unauthorized: server shutting down")},
		{Kind: control.EventResumed},
	}
	for _, ev := range events {
		tl.event(ev, "ws://h")
	}
	want := "[ops] a/m/s: new\uFFFD[2J\n" +
		"[whisper] b/m/s: psst\n" +
		"[ops] a/m/s: <end-to-end-encrypted payload>\n" +
		"[ops2] a/m/s: renamed\n"
	if got := out.String(); got != want {
		t.Errorf("tail printed\n%q\nwant\n%q", got, want)
	}
	wantErr := "#ops was renamed to #ops2; still tailing\n" +
		"⚠ connection to ws://h lost: server ended the session: unauthorized: server shutting down — reconnecting (Ctrl-C to stop)\n" +
		"✓ reconnected; resuming #ops2\n"
	if errOut.String() != wantErr {
		t.Errorf("stderr\n%q\nwant\n%q", errOut.String(), wantErr)
	}
}

func TestTailerJSON(t *testing.T) {
	var out bytes.Buffer
	g := &Globals{Stdout: &out, Stderr: &out, Logger: slog.New(slog.DiscardHandler), JSON: true}
	tl := &tailer{g: g, channel: "ops"}
	tl.event(control.Event{Kind: control.EventMessage, History: true,
		Frame: &protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", From: "alice/wa/cli-4242", Body: str("hi"), TsMs: 1700, Seq: 3}}, "")
	tl.event(control.Event{Kind: control.EventFrame,
		Frame: &protocol.Frame{Type: protocol.TWhisper, From: "b/m/s", Target: "me/m/t", Body: str("<x>"), TsMs: 1800}}, "")
	want := `{"kind":"channel","channel":"ops","from":"alice/wa/cli-4242","body":"hi","ts_ms":1700,"seq":3,"history":true}` + "\n" +
		`{"kind":"whisper","from":"b/m/s","target":"me/m/t","body":"<x>","ts_ms":1800}` + "\n"
	if got := out.String(); got != want {
		t.Errorf("tail --json printed\n%s\nwant\n%s", got, want)
	}
}

// scriptServer is a stand-in server for tail's unit tests: it answers the
// handshake without checking the signature and hands the n-th connection
// (from 0) to script.
type scriptServer struct {
	url    string
	script func(ctx context.Context, n int, c *scriptConn)
	conns  atomic.Int32
}

type scriptConn struct {
	t  *testing.T
	ws *websocket.Conn
}

const scriptServerID = "script-server-id"

func newScriptServer(t *testing.T, script func(ctx context.Context, n int, c *scriptConn)) *scriptServer {
	s := &scriptServer{script: script}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(control.ServerIDHeader, scriptServerID)
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
		defer cancel()
		c := &scriptConn{t: t, ws: ws}
		hello := c.read(ctx)
		c.send(ctx, &protocol.Frame{Type: protocol.TChallenge, Nonce: make([]byte, protocol.NonceSize), ServerID: scriptServerID})
		c.read(ctx) // auth
		no := false
		c.send(ctx, &protocol.Frame{Type: protocol.TEstablished, Path: "alice/wa/" + hello.Session, Admin: &no, ServerID: scriptServerID})
		s.script(ctx, int(s.conns.Add(1))-1, c)
	}))
	t.Cleanup(ts.Close)
	s.url = "ws" + strings.TrimPrefix(ts.URL, "http")
	return s
}

func (c *scriptConn) read(ctx context.Context) *protocol.Frame {
	_, data, err := c.ws.Read(ctx)
	if err != nil {
		return &protocol.Frame{}
	}
	f, err := protocol.Decode(data)
	if err != nil {
		c.t.Errorf("client sent %q: %v", data, err)
		return &protocol.Frame{}
	}
	return f
}

// send writes frames as one message.
func (c *scriptConn) send(ctx context.Context, frames ...*protocol.Frame) {
	var lines [][]byte
	for _, f := range frames {
		lines = append(lines, protocol.MustEncode(f))
	}
	c.ws.Write(ctx, websocket.MessageText, bytes.Join(lines, []byte("\n")))
}

// expect reads a request of type typ and checks it with check.
func (c *scriptConn) expect(ctx context.Context, typ string, check func(f *protocol.Frame) bool) *protocol.Frame {
	f := c.read(ctx)
	if f.Type != typ || (check != nil && !check(f)) {
		c.t.Errorf("client sent %s, want a %s request that passes the check", protocol.MustEncode(f), typ)
	}
	return f
}

// drop ends the session with a drop reason, as the server does.
func (c *scriptConn) drop(ctx context.Context, reason protocol.Reason) {
	c.send(ctx, protocol.ErrorFrame("", reason.Err()))
	c.ws.Close(websocket.StatusPolicyViolation, "")
}

func msg(seq uint64) protocol.HistoryMessage {
	return protocol.HistoryMessage{Seq: seq, From: "bob/wb/s", TsMs: 1000 + int64(seq), Body: str(fmt.Sprint("m", seq))}
}

func live(seq uint64) *protocol.Frame {
	return &protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", From: "bob/wb/s", Body: str(fmt.Sprint("m", seq)), TsMs: 1000 + int64(seq), Seq: seq}
}

// runTail runs `tail --channel ops` with args against the script server
// and returns stdout, stderr and the error.
func runTail(t *testing.T, s *scriptServer, args ...string) (string, string, error) {
	t.Helper()
	dir := t.TempDir()
	if _, _, _, err := identity.LoadOrCreateKey(dir, "wa"); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, dir, fmt.Sprintf("[[servers]]\nurl = %q\nusername = \"alice\"\nmachine = \"wa\"\nserver_id = %q\n", s.url, scriptServerID))
	var out, errOut bytes.Buffer
	var cli CLI
	parser, err := kong.New(&cli, kong.Exit(func(int) { t.Fatal("kong exited") }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parser.Parse(append([]string{"tail", "--channel", "ops", "--as", "t"}, args...)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	g := &Globals{Stdout: &out, Stderr: &errOut, Logger: slog.New(slog.DiscardHandler), Version: "test", configDirFlag: dir}
	err = cli.Tail.Run(ctx, g)
	return out.String(), errOut.String(), err
}

// TestTailReadsUpToTheHead: tail reads the history up to the head the
// join reports (until_seq), once, and then prints the live deliveries
// that follow it: no second read, no wait.
func TestTailReadsUpToTheHead(t *testing.T) {
	t.Parallel()
	s := newScriptServer(t, func(ctx context.Context, n int, c *scriptConn) {
		j := c.expect(ctx, protocol.TJoin, func(f *protocol.Frame) bool { return f.Channel == "ops" })
		// seq 10 was posted right after the join, 8 just before it.
		c.send(ctx, &protocol.Frame{Type: protocol.TJoined, ID: j.ID, Channel: "ops", Seq: 9}, live(10))
		r := c.expect(ctx, protocol.TReadSince, func(f *protocol.Frame) bool {
			return f.SinceMs != nil && f.AfterSeq == nil && f.UntilSeq != nil && *f.UntilSeq == 9
		})
		c.send(ctx, &protocol.Frame{Type: protocol.THistory, ID: r.ID, Channel: "ops", Messages: []protocol.HistoryMessage{msg(6), msg(8)}, NextSeq: 8},
			live(11))
		c.drop(ctx, protocol.ReasonSuperseded)
	})
	out, errOut, err := runTail(t, s, "--since", "1h")
	want := "[ops] bob/wb/s: m6\n[ops] bob/wb/s: m8\n[ops] bob/wb/s: m10\n[ops] bob/wb/s: m11\n"
	if out != want {
		t.Errorf("tail printed\n%s\nwant\n%s", out, want)
	}
	if err == nil || !strings.Contains(err.Error(), "superseded") || errOut != "tailing #ops as alice/wa/t — Ctrl-C to stop\n" {
		t.Errorf("tail ended with %v, stderr %q; want the banner and the drop reason as its error", err, errOut)
	}
}

// TestTailReconnects: a session dropped for a reason that does not last
// (here the idle timeout) is reconnected; tail joins again, catches up
// after the last seq it printed, skips live deliveries it has printed, and
// follows a rename.
func TestTailReconnects(t *testing.T) {
	t.Parallel()
	s := newScriptServer(t, func(ctx context.Context, n int, c *scriptConn) {
		j := c.expect(ctx, protocol.TJoin, func(f *protocol.Frame) bool { return f.Channel == map[int]string{0: "ops", 1: "ops2"}[n] })
		c.send(ctx, &protocol.Frame{Type: protocol.TJoined, ID: j.ID, Channel: j.Channel})
		switch n {
		case 0:
			c.send(ctx, live(5), &protocol.Frame{Type: protocol.TRenamed, Channel: "ops", NewName: "ops2"})
			c.drop(ctx, protocol.ReasonIdle)
		case 1:
			r := c.expect(ctx, protocol.TReadSince, func(f *protocol.Frame) bool {
				return f.Channel == "ops2" && f.AfterSeq != nil && *f.AfterSeq == 5
			})
			m7 := msg(7)
			c.send(ctx, &protocol.Frame{Type: protocol.THistory, ID: r.ID, Channel: "ops2", Messages: []protocol.HistoryMessage{msg(6), m7}, NextSeq: 7})
			l7, l8 := live(7), live(8)
			l7.Channel, l8.Channel = "ops2", "ops2"
			c.send(ctx, l7, l8)
			// the first live message is already in the history: no second read
			c.send(ctx, &protocol.Frame{Type: protocol.TUnsubscribed, Channel: "ops2", Reason: "kicked from the channel by carol"})
		}
	})
	start := time.Now()
	out, errOut, err := runTail(t, s)
	want := "[ops] bob/wb/s: m5\n[ops2] bob/wb/s: m6\n[ops2] bob/wb/s: m7\n[ops2] bob/wb/s: m8\n"
	if out != want {
		t.Errorf("tail printed\n%s\nwant\n%s", out, want)
	}
	if err == nil || err.Error() != "unsubscribed from #ops2: kicked from the channel by carol" {
		t.Errorf("tail ended with %v", err)
	}
	wantErr := "tailing #ops as alice/wa/t — Ctrl-C to stop\n" +
		"#ops was renamed to #ops2; still tailing\n" +
		"⚠ connection to " + s.url + " lost: server ended the session: unauthorized: idle timeout: no heartbeat — reconnecting (Ctrl-C to stop)\n" +
		"✓ reconnected; resuming #ops2\n"
	if errOut != wantErr {
		t.Errorf("stderr\n%s\nwant\n%s", errOut, wantErr)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("reconnected after %v, before the 1 s backoff", d)
	}
}

// TestTailPassesOverAGap: a seq the history does not hold (a post the
// server could not store) is passed over, and the reconnection after it
// resumes past it.
func TestTailPassesOverAGap(t *testing.T) {
	t.Parallel()
	s := newScriptServer(t, func(ctx context.Context, n int, c *scriptConn) {
		j := c.expect(ctx, protocol.TJoin, nil)
		switch n {
		case 0:
			c.send(ctx, &protocol.Frame{Type: protocol.TJoined, ID: j.ID, Channel: "ops", Seq: 8})
			r := c.expect(ctx, protocol.TReadSince, func(f *protocol.Frame) bool { return f.SinceMs != nil && f.UntilSeq != nil && *f.UntilSeq == 8 })
			c.send(ctx, &protocol.Frame{Type: protocol.THistory, ID: r.ID, Channel: "ops",
				Messages: []protocol.HistoryMessage{msg(6), {Seq: 7, Gap: true}, {Seq: 8, Gap: true}}, NextSeq: 8})
			c.drop(ctx, protocol.ReasonShutdown)
		case 1:
			c.send(ctx, &protocol.Frame{Type: protocol.TJoined, ID: j.ID, Channel: "ops", Seq: 9})
			r := c.expect(ctx, protocol.TReadSince, func(f *protocol.Frame) bool {
				return f.AfterSeq != nil && *f.AfterSeq == 8 && f.UntilSeq != nil && *f.UntilSeq == 9
			})
			c.send(ctx, &protocol.Frame{Type: protocol.THistory, ID: r.ID, Channel: "ops", Messages: []protocol.HistoryMessage{msg(9)}, NextSeq: 9})
			c.drop(ctx, protocol.ReasonMachineGone)
		}
	})
	out, _, err := runTail(t, s, "--since", "2026-01-01")
	if want := "[ops] bob/wb/s: m6\n[ops] bob/wb/s: m9\n"; out != want {
		t.Errorf("tail printed\n%s\nwant\n%s", out, want)
	}
	if err == nil || !strings.Contains(err.Error(), protocol.ReasonMachineGone.Text()) {
		t.Errorf("tail ended with %v, want the drop reason", err)
	}
}
