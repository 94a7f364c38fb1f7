package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/conclave/conclave/protocol"
)

func str(s string) *string { return &s }

func TestTailerEvents(t *testing.T) {
	var out, errOut bytes.Buffer
	g := &Globals{Stdout: &out, Stderr: &errOut, Logger: slog.New(slog.DiscardHandler)}
	tl := &tailer{g: g, channel: "ops", lastSeq: 4}
	events := []*protocol.Frame{
		{Type: protocol.TChannelMsg, Channel: "ops", From: "a/m/s", Body: str("old"), Seq: 4}, // already in the backlog
		{Type: protocol.TChannelMsg, Channel: "ops", From: "a/m/s", Body: str("new\x1b[2J"), Seq: 5},
		{Type: protocol.TChannelMsg, Channel: "other", From: "a/m/s", Body: str("elsewhere"), Seq: 9},
		{Type: protocol.TWhisper, From: "b/m/s", Target: "me/m/t", Body: str("psst")},
		{Type: protocol.TChannelMsg, Channel: "ops", From: "a/m/s", Sealed: &protocol.Sealed{Ciphertext: []byte{1}}, Seq: 6},
		{Type: protocol.TUnsubscribed, Channel: "other", Reason: "kicked"},
		{Type: protocol.TRenamed, Channel: "ops", NewName: "ops2"},
		{Type: protocol.TChannelMsg, Channel: "ops2", From: "a/m/s", Body: str("renamed"), Seq: 7},
	}
	for _, f := range events {
		if err := tl.event(f); err != nil {
			t.Fatalf("event %+v: %v", f, err)
		}
	}
	want := "[ops] a/m/s: new\uFFFD[2J\n" +
		"[whisper] b/m/s: psst\n" +
		"[ops] a/m/s: <end-to-end-encrypted payload>\n" +
		"[ops2] a/m/s: renamed\n"
	if got := out.String(); got != want {
		t.Errorf("tail printed\n%q\nwant\n%q", got, want)
	}
	if !strings.Contains(errOut.String(), "#ops was renamed to #ops2") {
		t.Errorf("stderr %q does not announce the rename", errOut.String())
	}
	err := tl.event(&protocol.Frame{Type: protocol.TUnsubscribed, Channel: "ops2", Reason: "banned by alice"})
	if err == nil || !strings.Contains(err.Error(), "unsubscribed from #ops2: banned by alice") {
		t.Errorf("unsubscribed: error %v, want the reason", err)
	}
}

func TestTailerJSON(t *testing.T) {
	var out bytes.Buffer
	g := &Globals{Stdout: &out, Stderr: &out, Logger: slog.New(slog.DiscardHandler), JSON: true}
	tl := &tailer{g: g, channel: "ops"}
	tl.event(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", From: "alice/wa/cli-4242", Body: str("hi"), TsMs: 1700, Seq: 3})
	tl.event(&protocol.Frame{Type: protocol.TWhisper, From: "b/m/s", Target: "me/m/t", Body: str("<x>"), TsMs: 1800})
	want := `{"kind":"channel","channel":"ops","from":"alice/wa/cli-4242","body":"hi","ts_ms":1700,"seq":3}` + "\n" +
		`{"kind":"whisper","from":"b/m/s","target":"me/m/t","body":"<x>","ts_ms":1800}` + "\n"
	if got := out.String(); got != want {
		t.Errorf("tail --json printed\n%s\nwant\n%s", got, want)
	}
}
