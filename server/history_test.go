package server

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/conclave/conclave/eventlog"
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

// TestJoinHeadMeetsTheLiveStream: while two sessions post without pause, a
// reader joins, reads the history up to joined's seq with until_seq, then
// takes the live deliveries. Together they hold every post exactly once,
// in order, although posts reach subscribers before they are durable.
func TestJoinHeadMeetsTheLiveStream(t *testing.T) {
	env := newTestEnv(t, Config{DataDir: t.TempDir()})
	const perPoster = 150
	posters := []*client{env.register("aaron", "wa", "s"), env.register("bea", "wb", "s")}
	posters[0].ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	for _, p := range posters {
		p.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	}
	acked := make(chan uint64, 2*perPoster)
	var posted atomic.Int64
	var wg sync.WaitGroup
	for i, p := range posters {
		wg.Go(func() {
			for n := range perPoster {
				id := fmt.Sprint("p", n)
				b, _ := json.Marshal(&protocol.Frame{Type: protocol.TChannelMsg, ID: id, Channel: "ops", Body: body(fmt.Sprint(i, "-", n))})
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := p.conn.Write(ctx, websocket.MessageText, b)
				cancel()
				if err != nil {
					t.Errorf("poster %d: %v", i, err)
					return
				}
				for f := range p.frames {
					if f.ID == id {
						if f.Type != protocol.TAck {
							t.Errorf("poster %d: %+v", i, f)
							return
						}
						acked <- f.Seq
						posted.Add(1)
						break
					}
				}
			}
		})
	}
	for posted.Load() < perPoster/2 {
		runtime.Gosched()
	}

	d := env.register("david", "m", "s")
	var live []*protocol.Frame // deliveries that arrive while d waits for replies
	request := func(f *protocol.Frame) *protocol.Frame {
		t.Helper()
		f.ID = fmt.Sprint("d", len(live), f.Type)
		d.sendFrame(f)
		for {
			r := d.next()
			if r.ID == f.ID {
				if r.Type == protocol.TError {
					t.Fatalf("%s: %s: %s", f.Type, r.Code, r.Message)
				}
				return r
			}
			if r.Type == protocol.TChannelMsg {
				live = append(live, r)
			}
		}
	}
	j := request(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	if j.Type != protocol.TJoined || j.Seq == 0 {
		t.Fatalf("joined = %+v, want the channel's head seq", j)
	}
	var got []uint64
	var after *uint64
	for {
		h := request(&protocol.Frame{Type: protocol.TReadSince, Channel: "ops", AfterSeq: after, UntilSeq: u64(j.Seq), Limit: 40})
		for _, m := range h.Messages {
			if m.Gap || m.Seq > j.Seq {
				t.Fatalf("history message %+v, want stored messages up to %d", m, j.Seq)
			}
			got = append(got, m.Seq)
		}
		if !h.More {
			break
		}
		after = u64(h.NextSeq)
	}
	if len(got) == 0 || got[len(got)-1] != j.Seq {
		t.Fatalf("history up to the head %d ends at %v", j.Seq, got[max(0, len(got)-3):])
	}
	wg.Wait()
	close(acked)
	var want []uint64
	for s := range acked {
		want = append(want, s)
	}
	slices.Sort(want)
	for len(got) < len(want) {
		f := d.next()
		if f.Type == protocol.TChannelMsg {
			live = append(live, f)
		}
		for _, f := range live {
			if f.Seq <= j.Seq {
				t.Fatalf("live delivery %d at or below the head %d", f.Seq, j.Seq)
			}
			got = append(got, f.Seq)
		}
		live = live[:0]
	}
	if !slices.Equal(got, want) {
		t.Fatalf("history then live: %d seqs, want the %d acknowledged in order\ngot  %v\nwant %v", len(got), len(want), got, want)
	}
	d.fail(&protocol.Frame{Type: protocol.TReadSince, Channel: "ops", UntilSeq: u64(1), BeforeSeq: u64(0)}, protocol.CodeMalformed)
	// An until_seq beyond what was numbered does not wait for posts that
	// do not exist yet.
	if h := d.ok(&protocol.Frame{Type: protocol.TReadSince, Channel: "ops", AfterSeq: u64(want[len(want)-1]), UntilSeq: u64(1 << 40)}); len(h.Messages) != 0 {
		t.Fatalf("after the last post: %+v", h.Messages)
	}
}

// TestReadUntilWaitsForDurability: a post numbered before a join but not
// yet durable is in the page read up to joined's seq: read_since waits for
// it instead of answering without it.
func TestReadUntilWaitsForDurability(t *testing.T) {
	var armed atomic.Bool
	gate := make(chan struct{})
	var open sync.Once
	release := func() { armed.Store(false); open.Do(func() { close(gate) }) }
	hook := func(op string) error {
		if op == eventlog.OpSync && armed.Load() {
			<-gate
		}
		return nil
	}
	env := newTestEnv(t, Config{DataDir: t.TempDir(), failHook: hook})
	t.Cleanup(release) // runs before the server's close, which waits for the writer
	a := env.register("aaron", "wa", "s")
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	a.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	c := env.register("carol", "wc", "s")
	c.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	d := env.register("david", "m", "s")
	first := a.ok(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: body("durable")})

	armed.Store(true)
	a.sendFrame(&protocol.Frame{Type: protocol.TChannelMsg, ID: "slow", Channel: "ops", Body: body("in flight")})
	for { // wait until it is numbered and delivered; its fsync waits at the gate
		if f := c.nextOfType(protocol.TChannelMsg); *f.Body == "in flight" {
			break
		}
	}
	j := d.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"}) // public: no event to store
	if j.Seq != first.Seq+1 {
		t.Fatalf("joined at %d, want %d (the post in flight)", j.Seq, first.Seq+1)
	}
	d.sendFrame(&protocol.Frame{Type: protocol.TReadSince, ID: "r", Channel: "ops", UntilSeq: u64(j.Seq)})
	d.quiet(100 * time.Millisecond) // the page waits for the post in flight
	release()
	h := d.next()
	if h.ID != "r" || len(h.Messages) != 2 || h.Messages[1].Seq != j.Seq || *h.Messages[1].Body != "in flight" {
		t.Fatalf("page up to the head = %+v, want both posts", h)
	}
	if r := a.nextOfType(protocol.TAck); r.ID != "slow" || r.Seq != j.Seq {
		t.Fatalf("ack = %+v", r)
	}
}
