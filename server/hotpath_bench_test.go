package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/datadir"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
	"github.com/conclave/conclave/protocol"
)

// fakeSession is a session with no connection, for benchmarks of the
// fan-out that drain its outbox by hand.
func fakeSession(s *Server, path string) *session {
	return &session{srv: s, path: path, log: s.log, out: outbox{running: true}, // no writeLoop: the benchmark takes the queue
		dead: make(chan struct{}), posts: make(chan struct{}, 4*s.cfg.QueueLen), subs: make(map[string]struct{})}
}

func TestHistRecordEncoding(t *testing.T) {
	empty, body := "", "hi <there> & \"you\"\n\u2028 \xff"
	for _, r := range []histRecord{
		{CID: 1, From: "a/b/c", TsMs: 1767225600123, Body: &body},
		{CID: 0, From: "", TsMs: 0, Body: &empty},
		{CID: 7, From: "a/b/c", TsMs: 5, Sealed: &protocol.Sealed{Ciphertext: []byte{1, 2}, KeyID: "k"}},
		{CID: 7, From: "a/b/c", TsMs: 5},
	} {
		want, _ := json.Marshal(r)
		if got := appendHistRecord(nil, r.CID, r.From, r.TsMs, r.Body, r.Sealed); !bytes.Equal(got, want) {
			t.Errorf("appendHistRecord = %s, want %s", got, want)
		}
	}
}

// BenchmarkFanOutEnqueue measures hub.publish to 100 subscribers of a
// channel: the per-delivery cost of the fan-out before the writers (one
// encoded frame shared by all).
func BenchmarkFanOutEnqueue(b *testing.B) {
	s, err := Open(Config{Ephemeral: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	const subs = 100
	var all []*session
	for i := range subs {
		sess := fakeSession(s, fmt.Sprintf("u%d/m/s", i))
		s.hub.attach(sess)
		s.hub.subscribe(sess, "ops")
		all = append(all, sess)
	}
	body := strings.Repeat("x", 200)
	frame := protocol.AppendDelivery(nil, "ops", "pub/m/s", &body, nil, time.Now().UnixMilli(), 1)
	var spare []qframe
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if n := s.hub.publish("ops", nil, frame); n != subs {
			b.Fatalf("published to %d", n)
		}
		if i%256 == 255 {
			b.StopTimer()
			for _, sess := range all {
				spare, _ = sess.take(spare)
				clear(spare)
			}
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subs), "ns/delivery")
}

// buildMillion writes a log of about n events to dir: 10 000 users with
// two machines each, 20 000 private channels, and for the rest ACL,
// invite and ban churn on those channels. It decides and applies each
// command as the writer does (so every event is one the server would
// have written) and appends in large batches without fsync.
func buildMillion(tb testing.TB, dir string, n int) *projections.State {
	tb.Helper()
	const users, channels = 10_000, 20_000
	st, state, err := openStore(context.Background(), dir, &eventlog.Options{NoSync: true}, discard())
	if err != nil {
		tb.Fatal(err)
	}
	defer st.close()
	now := time.Now()
	var batch []eventlog.Entry
	next := state.LastSeq() + 1
	flush := func() {
		if _, err := st.log.Append(batch); err != nil {
			tb.Fatal(err)
		}
		batch = batch[:0]
	}
	do := func(user string, cmd projections.Command) {
		actor := projections.Actor{User: user, Path: user + "/m0/s"}
		events, perr := state.Decide(actor, cmd, now)
		if perr != nil {
			tb.Fatalf("%T: %v", cmd, perr)
		}
		for _, ev := range events {
			ev.Actor, ev.TimeMs = actor.Path, now.UnixMilli()
			if err := state.Apply(next, ev); err != nil {
				tb.Fatal(err)
			}
			next++
			batch = append(batch, eventlog.Entry{TimeMs: ev.TimeMs, Actor: ev.Actor, Type: ev.Type, Data: ev.Data})
		}
		if len(batch) >= 4096 {
			flush()
		}
	}
	key := func(i int) ed25519.PublicKey {
		var seed [ed25519.SeedSize]byte
		binary.BigEndian.PutUint64(seed[:], uint64(i)+1)
		return ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey)
	}
	user := func(i int) string { return fmt.Sprintf("user%05d", i%users) }
	channel := func(i int) string { return fmt.Sprintf("chan%05d", i%channels) }
	for i := range users {
		do(user(i), projections.Register{User: user(i), Machine: "m0", Pubkey: key(2 * i)})
		do(user(i), projections.MachineAdd{Machine: "m1", Pubkey: key(2*i + 1)})
	}
	for i := range channels {
		do(user(i), projections.CreateChannel{Channel: channel(i), Visibility: protocol.Private})
	}
	// Churn in rounds of six passes over the channels: add a member and
	// remove it, create an invite and revoke it, ban a user and unban
	// them. Each round leaves one member and one ban per channel (of a
	// different user each round), so the state grows slowly, as a
	// long-lived server's does.
	for i := 0; int(next) <= n; i++ {
		c, pass, round := i%channels, i/channels%6, i/channels/6
		owner := user(c)
		member := user(c + 1 + (2*round)%97)
		gone := user(c + 1 + (2*round+1)%97)
		switch pass {
		case 0:
			do(owner, projections.ACLAdd{Channel: channel(c), User: member})
			do(owner, projections.ACLAdd{Channel: channel(c), User: gone})
		case 1:
			do(owner, projections.ACLRemove{Channel: channel(c), User: gone})
		case 2:
			do(owner, projections.InviteCreate{Channel: channel(c), Token: fmt.Sprintf("tok%d-%d", round, c)})
		case 3:
			do(owner, projections.InviteRevoke{Token: fmt.Sprintf("tok%d-%d", round, c)})
		case 4:
			do(owner, projections.Ban{Channel: channel(c), User: member})
			do(owner, projections.Ban{Channel: channel(c), User: gone})
		case 5:
			do(owner, projections.Unban{Channel: channel(c), User: gone})
		}
	}
	flush()
	return state
}

// BenchmarkRestartMillion measures startup on a log of a million events
// (SPEC's restart target): from a snapshot covering it, and by full
// replay. It also reports the snapshot's write time and size. Building
// the log takes a while; run with -benchtime 1x.
func BenchmarkRestartMillion(b *testing.B) {
	const n = 1_000_000
	dir := b.TempDir()
	start := time.Now()
	buildMillion(b, dir, n)
	b.Logf("built a log of %d events in %v", n, time.Since(start).Round(time.Millisecond))
	st, state, err := openStore(context.Background(), dir, nil, discard())
	if err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	if err := st.snapshot(state); err != nil {
		b.Fatal(err)
	}
	snapTook := time.Since(start)
	st.close()
	snapDir := filepath.Join(dir, datadir.SnapshotsDir)
	var snapBytes int64
	if es, _ := os.ReadDir(snapDir); len(es) > 0 {
		if info, err := es[0].Info(); err == nil {
			snapBytes = info.Size()
		}
	}
	var fromSnap, full time.Duration
	b.Run("snapshot", func(b *testing.B) {
		for b.Loop() {
			st, state, err := openStore(context.Background(), dir, nil, discard())
			if err != nil {
				b.Fatal(err)
			}
			if state.LastSeq() < n {
				b.Fatalf("recovered seq %d, want %d", state.LastSeq(), n)
			}
			st.close()
		}
		fromSnap = b.Elapsed() / time.Duration(b.N)
		b.ReportMetric(snapTook.Seconds(), "snapshot-write-s")
		b.ReportMetric(float64(snapBytes), "snapshot-bytes")
	})
	if err := os.Rename(snapDir, filepath.Join(b.TempDir(), "snapshots")); err != nil {
		b.Fatal(err)
	}
	os.Mkdir(snapDir, 0o700)
	b.Run("full-replay", func(b *testing.B) {
		for b.Loop() {
			st, state, err := openStore(context.Background(), dir, nil, discard())
			if err != nil {
				b.Fatal(err)
			}
			if state.LastSeq() < n {
				b.Fatalf("recovered seq %d, want %d", state.LastSeq(), n)
			}
			st.close()
		}
		full = b.Elapsed() / time.Duration(b.N)
		if fromSnap > 0 {
			b.ReportMetric(full.Seconds()/fromSnap.Seconds(), "x-slower-than-snapshot")
		}
	})
}

// BenchmarkSnapshot measures writing (encode, zstd, fsync, rename) and
// restoring (read, verify, decode) a snapshot of a state of 100 000
// events of the million-event mix.
func BenchmarkSnapshot(b *testing.B) {
	dir := b.TempDir()
	state := buildMillion(b, dir, 100_000)
	b.Run("write", func(b *testing.B) {
		for b.Loop() {
			data, err := state.MarshalSnapshot()
			if err != nil {
				b.Fatal(err)
			}
			d := b.TempDir()
			if err := eventlog.WriteSnapshot(d, eventlog.Snapshot{Seq: state.LastSeq(), Schema: projections.SchemaVersion, Data: data}, 3); err != nil {
				b.Fatal(err)
			}
		}
	})
	data, _ := state.MarshalSnapshot()
	d := b.TempDir()
	if err := eventlog.WriteSnapshot(d, eventlog.Snapshot{Seq: state.LastSeq(), Schema: projections.SchemaVersion, Data: data}, 3); err != nil {
		b.Fatal(err)
	}
	b.Run("restore", func(b *testing.B) {
		for b.Loop() {
			snap, err := eventlog.LoadNewestSnapshot(d, projections.SchemaVersion, discard())
			if err != nil || snap == nil {
				b.Fatal(err)
			}
			if _, err := projections.UnmarshalSnapshot(snap.Data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCatchUp measures reading a channel's whole retained history
// of 10 000 messages over the wire, page by page (read_since with
// after_seq, 500 per page), as catch_up and tail --since do.
func BenchmarkCatchUp(b *testing.B) {
	const msgs = 10_000
	env := newTestEnv(b, Config{RateLimit: -1, AdminRate: -1})
	pub := env.register("poster", "m", "s")
	pub.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	pub.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	body := strings.Repeat("x", 200)
	for i := range msgs {
		pub.sendFrame(&protocol.Frame{Type: protocol.TChannelMsg, ID: fmt.Sprint(i), Channel: "ops", Body: &body})
		if i%500 == 499 {
			for range 500 {
				pub.nextOfType(protocol.TAck)
			}
		}
	}
	reader := env.register("reader", "m", "s")
	reader.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	b.ResetTimer()
	for b.Loop() {
		got := 0
		var after uint64
		for {
			a := after
			r := reader.ok(&protocol.Frame{Type: protocol.TReadSince, Channel: "ops", AfterSeq: &a, Limit: protocol.HistoryPageMax})
			got += len(r.Messages)
			after = r.NextSeq
			if !r.More {
				break
			}
		}
		if got != msgs {
			b.Fatalf("read %d messages, want %d", got, msgs)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/catch-up")
}
