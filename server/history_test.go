package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/protocol"
)

func u64(v uint64) *uint64 { return &v }

func postN(t *testing.T, c *client, ch string, n int, prefix string) []uint64 {
	t.Helper()
	var seqs []uint64
	for i := 0; i < n; i++ {
		r := c.ok(&protocol.Frame{Type: protocol.TChannelMsg, Channel: ch, Body: body(fmt.Sprintf("%s%d", prefix, i))})
		seqs = append(seqs, r.Seq)
	}
	return seqs
}

func bodies(h *protocol.Frame) []string {
	var out []string
	for _, m := range h.Messages {
		out = append(out, *m.Body)
	}
	return out
}

func TestHistoryPagingHasNoGapsOrDuplicates(t *testing.T) {
	env := newTestEnv(t, Config{})
	a := env.register("aaron", "wa", "s")
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "dev"})
	a.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	a.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "dev"})
	// Interleave two channels; many messages share a millisecond.
	for i := 0; i < 25; i++ {
		a.ok(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: body(fmt.Sprint("o", i))})
		a.ok(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "dev", Body: body(fmt.Sprint("d", i))})
	}
	d := env.register("david", "m", "s")
	d.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	var got []string
	var after *uint64
	pages := 0
	for {
		h := d.ok(&protocol.Frame{Type: protocol.TReadSince, Channel: "ops", AfterSeq: after, Limit: 7})
		if h.Type != protocol.THistory || h.Channel != "ops" {
			t.Fatalf("reply = %+v", h)
		}
		got = append(got, bodies(h)...)
		pages++
		for _, m := range h.Messages {
			if m.From != "aaron/wa/s" || m.TsMs == 0 {
				t.Fatalf("message = %+v", m)
			}
		}
		if !h.More {
			break
		}
		after = u64(h.NextSeq)
	}
	var want []string
	for i := 0; i < 25; i++ {
		want = append(want, fmt.Sprint("o", i))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") || pages != 4 {
		t.Fatalf("paged %d pages: %v, want %v", pages, got, want)
	}
	// since_ms picks up from a time; a future time gives nothing.
	h := d.ok(&protocol.Frame{Type: protocol.TReadSince, Channel: "ops", SinceMs: ptrI64(0)})
	if len(h.Messages) != 25 {
		t.Fatalf("since 0: %d messages", len(h.Messages))
	}
	h = d.ok(&protocol.Frame{Type: protocol.TReadSince, Channel: "ops", SinceMs: ptrI64(time.Now().Add(time.Hour).UnixMilli())})
	if len(h.Messages) != 0 || h.More {
		t.Fatalf("since future: %+v", h)
	}
}

func ptrI64(v int64) *int64 { return &v }

func TestHistoryIsRefusedLikeAMissingChannel(t *testing.T) {
	env := newTestEnv(t, Config{})
	a := env.register("aaron", "wa", "s")
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "secret", Visibility: "private"})
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "lobby"})
	d := env.register("david", "m", "s")
	norm := func(f *protocol.Frame, name string) string {
		return string(f.Code) + ":" + strings.ReplaceAll(f.Message, name, "C")
	}
	e1 := d.fail(&protocol.Frame{Type: protocol.TReadSince, Channel: "secret"}, protocol.CodeNotFound)
	e2 := d.fail(&protocol.Frame{Type: protocol.TReadSince, Channel: "nothing"}, protocol.CodeNotFound)
	e3 := d.fail(&protocol.Frame{Type: protocol.TReadSince, Channel: "lobby"}, protocol.CodeNotFound)
	if norm(e1, "secret") != norm(e2, "nothing") || norm(e2, "nothing") != norm(e3, "lobby") {
		t.Fatalf("refusals differ: %q %q %q", e1.Message, e2.Message, e3.Message)
	}
}

func TestHistorySurvivesRestartAndFollowsRename(t *testing.T) {
	dir := t.TempDir()
	env := newTestEnv(t, Config{DataDir: dir})
	key := newKey(t)
	a, _ := env.handshake(key, "s", &protocol.Frame{Username: "aaron", Machine: "wa"})
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	a.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	seqs := postN(t, a, "ops", 3, "m")
	env.close()

	env2 := newTestEnv(t, Config{DataDir: dir})
	a2 := env2.login(key, "s")
	a2.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	more := postN(t, a2, "ops", 1, "after")
	if more[0] <= seqs[2] {
		t.Fatalf("seq after restart %d, not after %d", more[0], seqs[2])
	}
	a2.ok(&protocol.Frame{Type: protocol.TRenameChannel, Channel: "ops", NewName: "ops2"})
	h := a2.ok(&protocol.Frame{Type: protocol.TReadSince, Channel: "ops2"})
	if got := strings.Join(bodies(h), ","); got != "m0,m1,m2,after0" {
		t.Fatalf("history after restart and rename = %s", got)
	}
	// Delete, then create the same name: the new channel starts empty.
	a2.ok(&protocol.Frame{Type: protocol.TDeleteChannel, Channel: "ops2"})
	a2.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops2"})
	a2.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops2"})
	if h := a2.ok(&protocol.Frame{Type: protocol.TReadSince, Channel: "ops2"}); len(h.Messages) != 0 {
		t.Fatalf("a new channel inherited history: %v", bodies(h))
	}
}

func TestHistoryRetentionPurges(t *testing.T) {
	dir := t.TempDir()
	env := newTestEnv(t, Config{DataDir: dir, HistoryRetention: time.Hour})
	a := env.register("aaron", "wa", "s")
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	a.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	postN(t, a, "ops", 5, "old")
	env.srv.history.purge(time.Now().Add(2 * time.Hour)) // everything so far is older than an hour then
	if h := a.ok(&protocol.Frame{Type: protocol.TReadSince, Channel: "ops"}); len(h.Messages) != 0 {
		t.Fatalf("purged messages still readable: %v", bodies(h))
	}
	postN(t, a, "ops", 2, "new")
	if h := a.ok(&protocol.Frame{Type: protocol.TReadSince, Channel: "ops"}); strings.Join(bodies(h), ",") != "new0,new1" {
		t.Fatalf("after purge = %v", bodies(h))
	}
	if first := env.srv.history.log.FirstIndex(); first < 6 {
		t.Fatalf("history log front not truncated: first index %d", first)
	}
}

func TestPostAckWaitsForDurableHistory(t *testing.T) {
	env := newTestEnv(t, Config{})
	a := env.register("aaron", "wa", "s")
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	a.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	r := a.ok(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: body("x")})
	// Acked means readable.
	h := a.ok(&protocol.Frame{Type: protocol.TReadSince, Channel: "ops"})
	if len(h.Messages) != 1 || h.Messages[0].Seq != r.Seq {
		t.Fatalf("acked message %d not in history %+v", r.Seq, h.Messages)
	}
}
