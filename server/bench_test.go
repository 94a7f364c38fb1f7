package server

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conclave/conclave/datadir"

	"github.com/tidwall/wal"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
	"github.com/conclave/conclave/protocol"
)

// buildLog writes n valid events (one registration, then channel
// creations) to a fresh data dir through the real writer.
func buildLog(b *testing.B, dir string, n int) {
	b.Helper()
	srv, err := Open(Config{DataDir: dir, SnapshotEvery: 1 << 30, AdminRate: -1})
	if err != nil {
		b.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	actor := projections.Actor{User: "bench", Path: "bench/m/s"}
	ctx := context.Background()
	if err := srv.submit(ctx, actor, projections.Register{User: "bench", Machine: "m", Pubkey: pub}, nil); err != nil {
		b.Fatal(err)
	}
	// 64 concurrent submitters so batches are large.
	var wg sync.WaitGroup
	var next atomic.Int64
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i >= int64(n) {
					return
				}
				if err := srv.submit(ctx, actor, projections.CreateChannel{Channel: fmt.Sprintf("c%d", i)}, nil); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Close without the shutdown snapshot: the caller decides.
	close(srv.stop)
	srv.wg.Wait()
	srv.store.close()
}

// BenchmarkRecovery measures startup on a log of 200 000 events, from the
// newest snapshot and by full replay. Run with -benchtime 3x.
func BenchmarkRecovery(b *testing.B) {
	const n = 200_000
	dir := b.TempDir()
	buildLog(b, dir, n)
	// Write a snapshot covering the whole log.
	st, state, err := openStore(context.Background(), dir, nil, discard())
	if err != nil {
		b.Fatal(err)
	}
	if err := st.snapshot(state); err != nil {
		b.Fatal(err)
	}
	st.close()
	snapDir := filepath.Join(dir, datadir.SnapshotsDir)
	moved := filepath.Join(b.TempDir(), "snapshots")

	b.Run("snapshot", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			st, state, err := openStore(context.Background(), dir, nil, discard())
			if err != nil {
				b.Fatal(err)
			}
			if state.LastSeq() != n {
				b.Fatalf("recovered seq %d, want %d", state.LastSeq(), n)
			}
			st.close()
		}
	})
	if err := os.Rename(snapDir, moved); err != nil {
		b.Fatal(err)
	}
	os.Mkdir(snapDir, 0o700)
	b.Run("full-replay", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			st, state, err := openStore(context.Background(), dir, nil, discard())
			if err != nil {
				b.Fatal(err)
			}
			if state.LastSeq() != n {
				b.Fatalf("recovered seq %d, want %d", state.LastSeq(), n)
			}
			st.close()
		}
	})
}

// BenchmarkAdminEvents measures durable admin events per second with 64
// concurrent writers through the single writer (fsync on), and a bare
// tidwall/wal WriteBatch loop at the batch size the writer achieved.
func BenchmarkAdminEvents(b *testing.B) {
	const total = 20_000
	var avgBatch float64
	b.Run("conclave-64-writers", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			d := b.TempDir()
			srv, err := Open(Config{DataDir: d, SnapshotEvery: 1 << 30, AdminRate: -1})
			if err != nil {
				b.Fatal(err)
			}
			pub, _, _ := ed25519.GenerateKey(nil)
			actor := projections.Actor{User: "bench", Path: "bench/m/s"}
			ctx := context.Background()
			srv.submit(ctx, actor, projections.Register{User: "bench", Machine: "m", Pubkey: pub}, nil)
			start := time.Now()
			var wg sync.WaitGroup
			var next atomic.Int64
			for w := 0; w < 64; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						k := next.Add(1)
						if k > total {
							return
						}
						if err := srv.submit(ctx, actor, projections.CreateChannel{Channel: fmt.Sprintf("c%d", k)}, nil); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			el := time.Since(start)
			ev := &srv.metrics.events.batch
			avgBatch = float64(ev.sum.Load()-1) / float64(ev.total()-1)
			b.ReportMetric(total/el.Seconds(), "events/s")
			b.ReportMetric(avgBatch, "events/batch")
			srv.Shutdown(ctx)
		}
	})
	b.Run("bare-wal-same-batches", func(b *testing.B) {
		batch := int(avgBatch + 0.5)
		if batch < 1 {
			batch = 1
		}
		payload := make([]byte, 150) // about one encoded channel_created record
		for i := 0; i < b.N; i++ {
			l, err := wal.Open(b.TempDir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			var wb wal.Batch
			idx := uint64(1)
			for idx <= total {
				for j := 0; j < batch && idx <= total; j++ {
					wb.Write(idx, payload)
					idx++
				}
				if err := l.WriteBatch(&wb); err != nil {
					b.Fatal(err)
				}
			}
			el := time.Since(start)
			b.ReportMetric(total/el.Seconds(), "events/s")
			b.ReportMetric(float64(batch), "events/batch")
			l.Close()
		}
	})
}

// BenchmarkFanOut measures deliveries per second with 200 sessions in one
// channel and one publisher over real loopback WebSockets.
func BenchmarkFanOut(b *testing.B) {
	const subs = 200
	const msgs = 2000
	env := newBenchEnv(b)
	pub := env.register("pub", "m", "s")
	pub.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	pub.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	clients := make([]*client, subs)
	for i := range clients {
		clients[i] = env.register(fmt.Sprint("u", i), "m", "s")
		clients[i].ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	}
	b.ResetTimer()
	for iter := 0; iter < b.N; iter++ {
		var got atomic.Int64
		var wg sync.WaitGroup
		for _, c := range clients {
			wg.Add(1)
			go func(c *client) {
				defer wg.Done()
				for n := 0; n < msgs; {
					select {
					case f, ok := <-c.frames:
						if !ok {
							return
						}
						if f.Type == protocol.TChannelMsg {
							n++
							got.Add(1)
						}
					case <-time.After(30 * time.Second):
						return
					}
				}
			}(c)
		}
		start := time.Now()
		b200 := string(make([]byte, 200))
		for i := 0; i < msgs; i++ {
			id := fmt.Sprint(i)
			pub.sendFrame(&protocol.Frame{Type: protocol.TChannelMsg, ID: id, Channel: "ops", Body: &b200})
		}
		wg.Wait()
		el := time.Since(start)
		b.ReportMetric(float64(got.Load())/el.Seconds(), "deliveries/s")
		if got.Load() != subs*msgs {
			b.Fatalf("delivered %d of %d", got.Load(), subs*msgs)
		}
		// Drain the publisher's acks.
		for i := 0; i < msgs; i++ {
			pub.nextOfType(protocol.TAck)
		}
	}
}

func discard() *slog.Logger { return Config{}.withDefaults().Logger }

func newBenchEnv(b *testing.B) *testEnv { return newTestEnv(b, Config{RateLimit: -1, QueueLen: 4096}) }

// buildChurnLog writes n events shaped like a long-lived server — users
// users, channels channels, and the rest ACL and ban churn on them —
// straight to the event log, and a snapshot covering them all.
func buildChurnLog(b *testing.B, dir string, n, users, channels int) {
	b.Helper()
	for _, sub := range []string{datadir.EventsDir, datadir.HistoryDir, datadir.SnapshotsDir} {
		os.MkdirAll(filepath.Join(dir, sub), 0o700)
	}
	log, err := eventlog.Open(filepath.Join(dir, datadir.EventsDir), &eventlog.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	var batch []eventlog.Entry
	add := func(typ string, v any) {
		data, err := json.Marshal(v)
		if err != nil {
			b.Fatal(err)
		}
		batch = append(batch, eventlog.Entry{TimeMs: 1, Actor: "server", Type: typ, Data: data})
		if len(batch) == 1000 {
			if _, err := log.Append(batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	for i := 0; i < users; i++ {
		pub, _, _ := ed25519.GenerateKey(nil)
		add(projections.EvUserRegistered, projections.RegisterData{User: fmt.Sprint("u", i), Machine: "m", Pubkey: pub})
	}
	for i := 0; i < channels; i++ {
		add(projections.EvChannelCreated, projections.ChannelData{Channel: fmt.Sprint("c", i), Visibility: "public", CreatedBy: fmt.Sprint("u", i%users)})
	}
	for i := users + channels; i < n; i++ {
		ch, u := fmt.Sprint("c", i%channels), fmt.Sprint("u", (i*7)%users)
		switch i % 4 {
		case 0:
			add(projections.EvACLAdded, projections.MemberData{Channel: ch, User: u})
		case 1:
			add(projections.EvACLRemoved, projections.MemberData{Channel: ch, User: u})
		case 2:
			add(projections.EvBanned, projections.MemberData{Channel: ch, User: u})
		default:
			add(projections.EvUnbanned, projections.MemberData{Channel: ch, User: u})
		}
	}
	if len(batch) > 0 {
		if _, err := log.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	log.Close()
	os.WriteFile(filepath.Join(dir, datadir.ServerIDFile), []byte("bench\n"), 0o600)
	st, state, err := openStore(context.Background(), dir, nil, discard())
	if err != nil {
		b.Fatal(err)
	}
	if err := st.snapshot(state); err != nil {
		b.Fatal(err)
	}
	st.close()
}

// BenchmarkRecoveryChurn measures startup on a 1 000 000-event log of a
// long-lived server (10 000 users, 20 000 channels, the rest ACL and ban
// churn), from its snapshot and by full replay. Run with -benchtime 3x.
func BenchmarkRecoveryChurn(b *testing.B) {
	const n = 1_000_000
	dir := b.TempDir()
	buildChurnLog(b, dir, n, 10_000, 20_000)
	run := func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			st, state, err := openStore(context.Background(), dir, nil, discard())
			if err != nil {
				b.Fatal(err)
			}
			if state.LastSeq() != n {
				b.Fatalf("recovered seq %d, want %d", state.LastSeq(), n)
			}
			st.close()
		}
	}
	b.Run("snapshot", run)
	snapDir := filepath.Join(dir, datadir.SnapshotsDir)
	if err := os.Rename(snapDir, filepath.Join(b.TempDir(), "moved")); err != nil {
		b.Fatal(err)
	}
	os.Mkdir(snapDir, 0o700)
	b.Run("full-replay", run)
}
