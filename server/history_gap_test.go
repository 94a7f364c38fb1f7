package server

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/conclave/conclave/datadir"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/protocol"
)

// flipHistoryRecord flips one byte in the middle of the payload of the
// history record seq, in the data dir dir, and returns its segment name.
func flipHistoryRecord(t *testing.T, dir string, seq uint64) string {
	t.Helper()
	segs, err := eventlog.ListSegments(filepath.Join(dir, datadir.HistoryDir))
	if err != nil || len(segs) == 0 {
		t.Fatalf("history segments: %v, %v", segs, err)
	}
	seg := segs[0]
	for _, s := range segs {
		if s.Index <= seq {
			seg = s
		}
	}
	b, err := os.ReadFile(seg.Path)
	if err != nil {
		t.Fatal(err)
	}
	fr := frameOffsets(b)
	i := int(seq - seg.Index)
	if i >= len(fr) {
		t.Fatalf("segment %s holds %d records, want seq %d", seg.Name, len(fr), seq)
	}
	b[(fr[i][0]+fr[i][1])/2] ^= 0x20
	if err := os.WriteFile(seg.Path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return seg.Name
}

// TestHistoryDamageIsAGap flips one byte in the middle of a stored
// message: the server starts anyway, logs the damaged record naming its
// file and seq, counts it in /metrics, and serves every other message of
// every channel, the damaged seq being a gap exactly like a refused post's
// (in no channel's history).
func TestHistoryDamageIsAGap(t *testing.T) {
	dir := t.TempDir()
	env := newTestEnv(t, Config{DataDir: dir, NoSync: true})
	a := env.register("alice", "wa", "s")
	for _, ch := range []string{"ops", "dev"} {
		a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: ch})
		a.ok(&protocol.Frame{Type: protocol.TJoin, Channel: ch})
	}
	var ops, dev []uint64
	for i := 0; i < 8; i++ {
		ops = append(ops, postN(t, a, "ops", 1, fmt.Sprintf("ops-%d-", i))...)
		dev = append(dev, postN(t, a, "dev", 1, fmt.Sprintf("dev-%d-", i))...)
	}
	env.close()

	bad := ops[3]
	seg := flipHistoryRecord(t, dir, bad)
	logs := &syncBuffer{}
	env2 := newTestEnv(t, Config{DataDir: dir, NoSync: true, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	z := env2.register("zed", "m", "s")
	for _, ch := range []string{"ops", "dev"} {
		z.ok(&protocol.Frame{Type: protocol.TJoin, Channel: ch})
	}
	wantOps := slices.Delete(slices.Clone(ops), 3, 4)
	check := func(ch string, want []uint64) {
		t.Helper()
		var got []uint64
		for _, p := range []*protocol.Frame{
			z.ok(&protocol.Frame{Type: protocol.TReadSince, Channel: ch}),
			z.ok(&protocol.Frame{Type: protocol.TReadSince, Channel: ch, BeforeSeq: u64(0)}),
			z.ok(&protocol.Frame{Type: protocol.TReadSince, Channel: ch, AfterSeq: u64(bad - 1)}),
		} {
			got = got[:0]
			for _, m := range p.Messages {
				got = append(got, m.Seq)
			}
			if len(got) > 0 && got[0] > want[0] {
				want = want[len(want)-len(got):]
			}
			if !slices.Equal(got, want) {
				t.Fatalf("#%s: read seqs %v, want %v (seq %d is damaged)", ch, got, want, bad)
			}
		}
	}
	check("ops", wantOps)
	check("dev", dev)

	line := ""
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "damaged history record") {
			if line != "" {
				t.Fatalf("two log lines for one damaged record:\n%s\n%s", line, l)
			}
			line = l
		}
	}
	file := filepath.Join(datadir.HistoryDir, seg)
	if !strings.Contains(line, "file="+file) || !strings.Contains(line, fmt.Sprintf("seq=%d ", bad)) {
		t.Fatalf("log line %q does not name file %s and seq %d\n%s", line, file, bad, logs)
	}
	if got := sample(t, scrape(t, env2), "conclave_history_damaged_records_total"); got != 1 {
		t.Fatalf("conclave_history_damaged_records_total = %v, want 1", got)
	}

	// Posts go on after the damage, numbered after it, and are read back.
	next := a2post(t, env2, z)
	if next <= dev[len(dev)-1] {
		t.Fatalf("new post numbered %d, not after the stored ones", next)
	}
	check("ops", append(wantOps, next))
	env2.close()

	// The damage is still on disk: a restart finds it again, and still
	// starts.
	env3 := newTestEnv(t, Config{DataDir: dir, NoSync: true})
	y := env3.register("yan", "m", "s")
	y.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	p := y.ok(&protocol.Frame{Type: protocol.TReadSince, Channel: "ops"})
	if len(p.Messages) != len(wantOps)+1 {
		t.Fatalf("after a second restart: %d messages, want %d", len(p.Messages), len(wantOps)+1)
	}
	if got := sample(t, scrape(t, env3), "conclave_history_damaged_records_total"); got != 1 {
		t.Fatalf("after a second restart: conclave_history_damaged_records_total = %v, want 1", got)
	}
}

// a2post posts one message to #ops as c and returns its seq.
func a2post(t *testing.T, env *testEnv, c *client) uint64 {
	t.Helper()
	return c.ok(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: body("after the damage")}).Seq
}

// TestHistoryGapRecordIsTheRefusedPostsFiller pins the one gap record:
// what append writes for a refused post's number is HistoryGapRecord, of
// no channel.
func TestHistoryGapRecordIsTheRefusedPostsFiller(t *testing.T) {
	if got, want := HistoryGapRecord(5), []byte(`{"cid":0,"from":"","ts_ms":5}`); !bytes.Equal(got, want) {
		t.Fatalf("HistoryGapRecord(5) = %s, want %s", got, want)
	}
}

// attackDamagedHistory: a stored message is damaged on disk (one byte
// flipped in the middle of its record) and the server restarts. It must
// start, serve every other message with the damaged seq a gap, and keep
// everything else as it was.
func attackDamagedHistory(t *testing.T, h *hostile) {
	h.alice.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	seqs := postN(t, h.alice, "ops", 6, "before the damage ")
	cfg := h.env.srv.cfg
	h.env.close()
	flipHistoryRecord(t, cfg.DataDir, seqs[2])

	h.env = newTestEnv(t, cfg)
	var f *protocol.Frame
	if h.root, f = h.env.handshake(h.rootKey, "s", nil); f.Type != protocol.TEstablished {
		t.Fatalf("root after the restart: %+v", f)
	}
	h.alice = h.env.login(h.alice.key, "s")
	h.carol = h.env.login(h.carol.key, "s")
	h.mallory = h.env.login(h.malKey, "s")
	for _, ch := range []string{"ops", "secret"} {
		h.carol.ok(&protocol.Frame{Type: protocol.TJoin, Channel: ch})
	}
	h.alice.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	p := h.alice.ok(&protocol.Frame{Type: protocol.TReadSince, Channel: "ops"})
	var got []uint64
	for _, m := range p.Messages {
		got = append(got, m.Seq)
	}
	if want := slices.Delete(slices.Clone(seqs), 2, 3); !slices.Equal(got, want) {
		t.Fatalf("after the damage #ops reads %v, want %v (seq %d is damaged)", got, want, seqs[2])
	}
	if got := sample(t, scrape(t, h.env), "conclave_history_damaged_records_total"); got != 1 {
		t.Fatalf("conclave_history_damaged_records_total = %v, want 1", got)
	}
}
