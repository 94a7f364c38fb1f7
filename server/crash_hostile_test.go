package server

// Damage to a data dir and failing disks, at the server level: a torn last
// record at every byte offset, flipped bytes before and after the newest
// snapshot, missing and damaged snapshots, injected write and fsync
// failures, and (as root, on a tiny tmpfs) a disk that fills up.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conclave/conclave/datadir"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
	"github.com/conclave/conclave/protocol"
)

// crashFixture is a data dir with a few dozen events, re-segmented into
// small segment files, and no snapshot.
type crashFixture struct {
	dir  string
	recs []eventlog.Record
	segs []segInfo
}

// segInfo is one events segment: its file name and the seqs it holds.
type segInfo struct {
	name        string
	first, last uint64
}

func newCrashFixture(t *testing.T) *crashFixture {
	t.Helper()
	dir := t.TempDir()
	env := newTestEnv(t, Config{DataDir: dir, NoSync: true, AdminRate: -1})
	a := env.register("alice", "wa", "s")
	env.register("bob", "wb", "s")
	for i := 0; i < 12; i++ {
		vis := "public"
		if i%3 == 0 {
			vis = "private"
		}
		a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: fmt.Sprintf("c%02d", i), Visibility: vis})
	}
	for i := 0; i < 12; i += 3 {
		a.ok(&protocol.Frame{Type: protocol.TACLAdd, Channel: fmt.Sprintf("c%02d", i), User: "bob"})
		a.ok(&protocol.Frame{Type: protocol.TInviteCreate, Channel: fmt.Sprintf("c%02d", i)})
	}
	a.ok(&protocol.Frame{Type: protocol.TRenameChannel, Channel: "c01", NewName: "renamed"})
	a.ok(&protocol.Frame{Type: protocol.TBan, Channel: "c02", User: "bob"})
	a.ok(&protocol.Frame{Type: protocol.TDeleteChannel, Channel: "c04"})
	env.close()

	events := filepath.Join(dir, datadir.EventsDir)
	var recs []eventlog.Record
	if err := mustReader(t, events).Scan(func(r eventlog.Record) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	// The same records in segments of about 1 KiB: the hash chain does not
	// depend on where a record sits.
	if err := os.RemoveAll(events); err != nil {
		t.Fatal(err)
	}
	l, err := eventlog.Open(events, &eventlog.Options{NoSync: true, SegmentSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		got, err := l.Append([]eventlog.Entry{{TimeMs: r.TimeMs, Actor: r.Actor, Type: r.Type, Data: r.Data}})
		if err != nil || got[0].Hash != r.Hash {
			t.Fatalf("re-append record %d: %v (hash differs: %v)", i+1, err, err == nil)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	removeSnapshots(t, dir)
	f := &crashFixture{dir: dir, recs: recs}
	f.segs = segmentsOf(t, events)
	if len(f.segs) < 4 {
		t.Fatalf("fixture has %d segments, want at least 4", len(f.segs))
	}
	return f
}

func mustReader(t *testing.T, dir string) *eventlog.Reader {
	t.Helper()
	r, err := eventlog.OpenReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func removeSnapshots(t *testing.T, dir string) {
	t.Helper()
	snaps, _ := filepath.Glob(filepath.Join(dir, datadir.SnapshotsDir, "*"))
	for _, s := range snaps {
		if err := os.Remove(s); err != nil {
			t.Fatal(err)
		}
	}
}

// segmentsOf lists the segments of an events dir with the seqs each holds.
func segmentsOf(t *testing.T, dir string) []segInfo {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []segInfo
	for _, de := range des {
		var first uint64
		if len(de.Name()) != 20 || de.IsDir() {
			continue
		}
		if _, err := fmt.Sscanf(de.Name(), "%d", &first); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, segInfo{name: de.Name(), first: first, last: first + uint64(len(frameOffsets(b))) - 1})
	}
	return out
}

// frameOffsets returns the [start, end) of every wal frame in a segment.
func frameOffsets(b []byte) [][2]int {
	var out [][2]int
	for off := 0; off < len(b); {
		size, n := binary.Uvarint(b[off:])
		if n <= 0 || off+n+int(size) > len(b) {
			break
		}
		out = append(out, [2]int{off, off + n + int(size)})
		off += n + int(size)
	}
	return out
}

// copy returns a fresh copy of the fixture's data dir.
func (f *crashFixture) copy(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.Walk(f.dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(f.dir, p)
		to := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(to, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// segOf returns the segment holding seq.
func (f *crashFixture) segOf(seq uint64) segInfo {
	for _, s := range f.segs {
		if seq >= s.first && seq <= s.last {
			return s
		}
	}
	return segInfo{}
}

// want is the state the first n records make.
func (f *crashFixture) want(t *testing.T, n int) []byte {
	t.Helper()
	s := projections.New()
	for _, r := range f.recs[:n] {
		if err := s.Apply(r.Seq, projections.Event{Type: r.Type, Data: r.Data, Actor: r.Actor, TimeMs: r.TimeMs}); err != nil {
			t.Fatal(err)
		}
	}
	b, err := s.MarshalSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeSnap writes a snapshot of the state after seq into dir.
func (f *crashFixture) writeSnap(t *testing.T, dir string, seq uint64) string {
	t.Helper()
	data := f.want(t, int(seq))
	snaps := filepath.Join(dir, datadir.SnapshotsDir)
	if err := eventlog.WriteSnapshot(snaps, eventlog.Snapshot{Schema: projections.SchemaVersion, Seq: seq, Hash: f.recs[seq-1].Hash, Data: data}, 3); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("snap-%020d.zst", seq)
}

// flip changes one byte in the middle of record seq's payload in dir.
func (f *crashFixture) flip(t *testing.T, dir string, seq uint64) segInfo {
	t.Helper()
	seg := f.segOf(seq)
	path := filepath.Join(dir, datadir.EventsDir, seg.name)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fr := frameOffsets(b)[seq-seg.first]
	b[(fr[0]+fr[1])/2] ^= 0x20
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return seg
}

// openDir starts a server on dir and returns it with its log, or the
// error that stopped it.
func openDir(t *testing.T, dir string) (*Server, *syncBuffer, error) {
	t.Helper()
	logs := &syncBuffer{}
	srv, err := Open(Config{DataDir: dir, NoSync: true, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err == nil {
		t.Cleanup(func() { srv.Shutdown(context.Background()) })
	}
	return srv, logs, err
}

// stateOf is the server's state, encoded for comparison.
func stateOf(s *Server) []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, _ := s.state.MarshalSnapshot()
	return b
}

func shutdown(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestCrashTornLastRecordAtEveryOffset cuts the newest events segment at
// every byte of its last record (and fills the rest with zeros, or with
// garbage, at a sample of offsets), as a crash in the middle of writing it
// would. That record was never acknowledged (acks follow the fsync); every
// earlier one must survive, the server must always start, and it must take
// new writes.
func TestCrashTornLastRecordAtEveryOffset(t *testing.T) {
	f := newCrashFixture(t)
	n := len(f.recs)
	last := f.segs[len(f.segs)-1]
	lastPath := filepath.Join(datadir.EventsDir, last.name)
	orig, err := os.ReadFile(filepath.Join(f.dir, lastPath))
	if err != nil {
		t.Fatal(err)
	}
	fr := frameOffsets(orig)
	start, end := fr[len(fr)-1][0], fr[len(fr)-1][1]
	withoutLast, all := f.want(t, n-1), f.want(t, n)
	snap := f.segs[1].last // a snapshot some segments back
	damage := []struct {
		name  string
		every int
		tear  func(b []byte, cut int) []byte
	}{
		{"truncated", 1, func(b []byte, cut int) []byte { return b[:cut] }},
		{"zero-filled", 7, func(b []byte, cut int) []byte {
			out := bytes.Clone(b)
			clear(out[cut:])
			return out
		}},
		{"garbage-filled", 7, func(b []byte, cut int) []byte {
			out := bytes.Clone(b)
			for i := cut; i < len(out); i++ {
				out[i] = byte(i*7 + 3)
			}
			return out
		}},
	}
	opens := 0
	for _, d := range damage {
		for _, withSnap := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s snapshot=%v", d.name, withSnap), func(t *testing.T) {
				// One dir, reset before each start: the torn segment
				// rewritten, repair evidence and shutdown snapshots removed.
				work := f.copy(t)
				var snapName string
				var snapBytes []byte
				if withSnap {
					snapName = f.writeSnap(t, work, snap)
					snapBytes, _ = os.ReadFile(filepath.Join(work, datadir.SnapshotsDir, snapName))
				}
				every := d.every
				if !withSnap {
					every += 2 // every offset once (with the snapshot) is enough
				}
				for cut := start; cut <= end; cut += every {
					dir := work
					if cut == start+1 {
						dir = f.copy(t)
					}
					removeSnapshots(t, dir)
					if withSnap {
						os.WriteFile(filepath.Join(dir, datadir.SnapshotsDir, snapName), snapBytes, 0o600)
					}
					broken, _ := filepath.Glob(filepath.Join(dir, datadir.EventsDir, "*.broken*"))
					for _, b := range broken {
						os.Remove(b)
					}
					if err := os.WriteFile(filepath.Join(dir, lastPath), d.tear(orig, cut), 0o600); err != nil {
						t.Fatal(err)
					}
					srv, logs, err := openDir(t, dir)
					opens++
					if err != nil {
						t.Fatalf("cut at byte %d of %d: the server does not start: %v", cut, end, err)
					}
					want := withoutLast
					if cut == end {
						want = all
					}
					if !bytes.Equal(stateOf(srv), want) {
						t.Fatalf("cut at byte %d of %d: state differs from the records before the torn one\n%s", cut, end, logs)
					}
					if cut == start+1 {
						// New writes go on from the last good record.
						ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
						err := srv.submit(ctx, projections.Actor{User: "alice", Path: "alice/wa/s"}, projections.CreateChannel{Channel: "after-the-crash", Visibility: protocol.Public}, nil)
						cancel()
						if err != nil {
							t.Fatalf("write after repair: %v", err)
						}
						shutdown(t, srv)
						srv2, _, err := openDir(t, dir)
						if err != nil {
							t.Fatalf("restart after repair and write: %v", err)
						}
						srv2.mu.RLock()
						_, ok := srv2.state.Channel("after-the-crash")
						srv2.mu.RUnlock()
						if !ok || lastSeq(srv2) != uint64(n) {
							t.Fatalf("after repair and write: last seq %d, want %d", lastSeq(srv2), n)
						}
						shutdown(t, srv2)
						if _, _, err := mustReader(t, filepath.Join(dir, datadir.EventsDir)).Verify(); err != nil {
							t.Fatalf("audit after repair and write: %v", err)
						}
						continue
					}
					shutdown(t, srv)
				}
			})
		}
	}
	t.Logf("%d starts over a torn last record of %d bytes", opens, end-start)
}

// TestCrashDamageAfterSnapshotRefusesStart flips a byte in a record the
// newest snapshot does not cover: startup must refuse, naming the segment
// file and the sequence number.
func TestCrashDamageAfterSnapshotRefusesStart(t *testing.T) {
	f := newCrashFixture(t)
	lastSeg := f.segs[len(f.segs)-1]
	snap := f.segs[0].last
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string) (seg string, seq uint64)
	}{
		{"checksum, in an older segment", func(t *testing.T, dir string) (string, uint64) {
			seq := f.segs[2].first + 1
			return f.flip(t, dir, seq).name, seq
		}},
		{"checksum, in the newest segment before its last record", func(t *testing.T, dir string) (string, uint64) {
			return f.flip(t, dir, lastSeg.first).name, lastSeg.first
		}},
		{"checksum, first record after the snapshot", func(t *testing.T, dir string) (string, uint64) {
			return f.flip(t, dir, snap+1).name, snap + 1
		}},
		{"hash chain: a record rewritten with a valid checksum", func(t *testing.T, dir string) (string, uint64) {
			seq := f.segs[2].first
			seg := f.segOf(seq)
			path := filepath.Join(dir, datadir.EventsDir, seg.name)
			b, _ := os.ReadFile(path)
			fr := frameOffsets(b)
			r := f.recs[seq-1]
			r.TimeMs++ // same length, valid CRC, different hash
			enc := eventlog.EncodeRecord(&r)
			var out []byte
			for i, o := range fr {
				if uint64(i) == seq-seg.first {
					out = binary.AppendUvarint(out, uint64(len(enc)))
					out = append(out, enc...)
					continue
				}
				out = append(out, b[o[0]:o[1]]...)
			}
			if err := os.WriteFile(path, out, 0o600); err != nil {
				t.Fatal(err)
			}
			return f.segOf(seq + 1).name, seq + 1 // the next record no longer links
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := f.copy(t)
			snapName := f.writeSnap(t, dir, snap)
			seg, seq := tt.damage(t, dir)
			_, logs, err := openDir(t, dir)
			if err == nil {
				t.Fatalf("the server started over damage at seq %d after snapshot %s\n%s", seq, snapName, logs)
			}
			msg := err.Error()
			if !strings.Contains(msg, fmt.Sprintf("segment %s, seq %d", seg, seq)) {
				t.Fatalf("refusal %q does not name segment %s and seq %d", msg, seg, seq)
			}
			var se *eventlog.SegmentError
			if !errors.As(err, &se) || se.Segment != seg || se.Seq != seq {
				t.Fatalf("refusal %v: got %+v, want a *eventlog.SegmentError for %s seq %d", err, se, seg, seq)
			}
			// audit verify names the same place.
			if _, _, verr := mustReader(t, filepath.Join(dir, datadir.EventsDir)).Verify(); !errors.As(verr, &se) || se.Seq != seq {
				t.Fatalf("Verify = %v, want damage at seq %d", verr, seq)
			}
		})
	}
}

// TestCrashDamageCoveredBySnapshot flips a byte in a record the newest
// snapshot covers: the server trusts the snapshot and starts (saying which
// snapshot it used), and a full verification names the damage.
func TestCrashDamageCoveredBySnapshot(t *testing.T) {
	f := newCrashFixture(t)
	n := len(f.recs)
	lastSeg := f.segs[len(f.segs)-1]
	tests := []struct {
		name      string
		snap, bad uint64
	}{
		{"in an older segment", f.segs[2].last, f.segs[1].first + 1},
		{"in the newest segment", lastSeg.first + 1, lastSeg.first},
		{"the last record, the snapshot's own", uint64(n), uint64(n)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := f.copy(t)
			snapName := f.writeSnap(t, dir, tt.snap)
			seg := f.flip(t, dir, tt.bad)
			srv, logs, err := openDir(t, dir)
			if err != nil {
				t.Fatalf("the server refused to start over damage at seq %d that snapshot %s covers: %v", tt.bad, snapName, err)
			}
			if !bytes.Equal(stateOf(srv), f.want(t, n)) {
				t.Fatal("state differs from the whole log's")
			}
			line := recoveredLine(logs)
			if !strings.Contains(line, "snapshot="+snapName) || !strings.Contains(line, fmt.Sprintf("events_replayed=%d", n-int(tt.snap))) {
				t.Fatalf("startup log %q does not say it used %s and replayed %d events", line, snapName, n-int(tt.snap))
			}
			// Writes go on, and the server starts again afterwards.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = srv.submit(ctx, projections.Actor{User: "alice", Path: "alice/wa/s"}, projections.CreateChannel{Channel: "after-the-damage", Visibility: protocol.Public}, nil)
			cancel()
			if err != nil {
				t.Fatalf("write after starting over covered damage: %v", err)
			}
			shutdown(t, srv)
			srv2, logs2, err := openDir(t, dir)
			if err != nil {
				t.Fatalf("restart after a write: %v", err)
			}
			if got := lastSeq(srv2); got != uint64(n+1) {
				t.Fatalf("after restart: last seq %d, want %d\n%s", got, n+1, logs2)
			}
			shutdown(t, srv2)
			_, _, verr := mustReader(t, filepath.Join(dir, datadir.EventsDir)).Verify()
			var se *eventlog.SegmentError
			if !errors.As(verr, &se) || se.Segment != seg.name || se.Seq != tt.bad || !errors.Is(verr, eventlog.ErrChecksum) {
				t.Fatalf("Verify = %v, want a checksum error at segment %s seq %d", verr, seg.name, tt.bad)
			}
		})
	}
}

// TestCrashSnapshotFallback deletes or damages the newest snapshots: the
// server falls back to an older one, or to a full replay, and says so.
func TestCrashSnapshotFallback(t *testing.T) {
	f := newCrashFixture(t)
	n := len(f.recs)
	s1, s2, s3 := uint64(n/4), uint64(n/2), uint64(n-3)
	name := func(seq uint64) string { return fmt.Sprintf("snap-%020d.zst", seq) }
	flipFile := func(t *testing.T, path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0xff
		os.WriteFile(path, b, 0o600)
	}
	tests := []struct {
		name   string
		damage func(t *testing.T, snaps string)
		used   string // the snapshot the log must name
		warn   string // a warning the log must carry, if any
	}{
		{"newest deleted", func(t *testing.T, snaps string) { os.Remove(filepath.Join(snaps, name(s3))) }, name(s2), ""},
		{"newest corrupted", func(t *testing.T, snaps string) { flipFile(t, filepath.Join(snaps, name(s3))) }, name(s2), name(s3)},
		{"newest truncated", func(t *testing.T, snaps string) {
			p := filepath.Join(snaps, name(s3))
			fi, _ := os.Stat(p)
			os.Truncate(p, fi.Size()/2)
		}, name(s2), name(s3)},
		{"newest empty", func(t *testing.T, snaps string) { os.Truncate(filepath.Join(snaps, name(s3)), 0) }, name(s2), name(s3)},
		{"two newest corrupted", func(t *testing.T, snaps string) {
			flipFile(t, filepath.Join(snaps, name(s3)))
			flipFile(t, filepath.Join(snaps, name(s2)))
		}, name(s1), name(s2)},
		{"all corrupted", func(t *testing.T, snaps string) {
			for _, s := range []uint64{s1, s2, s3} {
				flipFile(t, filepath.Join(snaps, name(s)))
			}
		}, "none (full replay)", name(s1)},
		{"newest of a future schema", func(t *testing.T, snaps string) {
			eventlog.WriteSnapshot(snaps, eventlog.Snapshot{Schema: projections.SchemaVersion + 1, Seq: uint64(n), Hash: f.recs[n-1].Hash, Data: []byte("from the future")}, 4)
		}, name(s3), name(uint64(n))},
		{"newest ahead of the log", func(t *testing.T, snaps string) {
			s, _ := projections.UnmarshalSnapshot(f.want(t, n))
			data, _ := s.MarshalSnapshot()
			eventlog.WriteSnapshot(snaps, eventlog.Snapshot{Schema: projections.SchemaVersion, Seq: uint64(n + 5), Data: data}, 4)
		}, "none (full replay)", "ahead of the event log"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := f.copy(t)
			for _, s := range []uint64{s1, s2, s3} {
				f.writeSnap(t, dir, s)
			}
			tt.damage(t, filepath.Join(dir, datadir.SnapshotsDir))
			srv, logs, err := openDir(t, dir)
			if err != nil {
				t.Fatalf("the server does not start: %v", err)
			}
			if !bytes.Equal(stateOf(srv), f.want(t, n)) {
				t.Fatalf("state differs from the whole log's\n%s", logs)
			}
			text := logs.String()
			if line := recoveredLine(logs); !strings.Contains(line, "snapshot="+tt.used+" ") && !strings.Contains(line, "snapshot=\""+tt.used+"\"") {
				t.Fatalf("startup did not say it used %s:\n%s", tt.used, text)
			}
			if tt.warn != "" && !strings.Contains(text, tt.warn) {
				t.Fatalf("startup did not warn about %s:\n%s", tt.warn, text)
			}
		})
	}
}

// recoveredLine returns the startup log line that says how the state was
// recovered.
func recoveredLine(logs *syncBuffer) string {
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `msg="state recovered"`) {
			return l
		}
	}
	return ""
}

// failSwitch is a failHook that fails one operation while armed.
type failSwitch struct {
	op    string
	armed atomic.Bool
	fired atomic.Int32
}

func (f *failSwitch) hook(op string) error {
	if f.armed.Load() && op == f.op {
		f.fired.Add(1)
		return fmt.Errorf("injected %s failure: %w", op, errors.New("input/output error"))
	}
	return nil
}

// TestCrashFailedWriteRefusesBatch injects a failed write or fsync into
// the event log and into the history: the batch is refused with a clear
// error, nothing of it is on disk or visible to other sessions, and writes
// succeed again once the disk does.
func TestCrashFailedWriteRefusesBatch(t *testing.T) {
	for _, op := range []string{eventlog.OpWrite, eventlog.OpSync} {
		t.Run("events "+op, func(t *testing.T) {
			sw := &failSwitch{op: op}
			dir := t.TempDir()
			env := newTestEnv(t, Config{DataDir: dir, failHook: sw.hook})
			key := newKey(t)
			a, _ := env.handshake(key, "s", &protocol.Frame{Username: "alice", Machine: "wa"})
			as := []*client{a, env.login(key, "s2"), env.login(key, "s3")}
			c := env.register("carol", "wc", "s")
			a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
			c.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
			events := filepath.Join(dir, datadir.EventsDir)
			before := dirBytes(t, events)
			seq := lastSeq(env.srv)

			sw.armed.Store(true)
			// Three sessions' changes, pipelined: they land in one batch or
			// in several, and all fail.
			reqs := []*protocol.Frame{
				{Type: protocol.TRenameChannel, ID: "r1", Channel: "ops", NewName: "ops2"},
				{Type: protocol.TCreateChannel, ID: "r2", Channel: "new"},
				{Type: protocol.TACLAdd, ID: "r3", Channel: "ops", User: "carol"},
			}
			for i, f := range reqs {
				as[i].sendFrame(f)
			}
			var replies []*protocol.Frame
			for i, f := range reqs {
				r := as[i].next()
				if r.ID != f.ID {
					t.Fatalf("reply %+v, want the reply to %s", r, f.ID)
				}
				replies = append(replies, r)
			}
			sw.armed.Store(false)
			if sw.fired.Load() == 0 {
				t.Fatal("the injected failure never fired")
			}
			for _, r := range replies {
				wantErr(t, "a change on a failing disk", r, protocol.CodeInternal, "could not store this change; nothing was changed, try again")
			}
			c.quiet(50 * time.Millisecond) // no renamed notice
			if got := lastSeq(env.srv); got != seq {
				t.Fatalf("last seq %d after a failed batch, want %d", got, seq)
			}
			if l := a.ok(&protocol.Frame{Type: protocol.TListChannels}); len(l.Channels) != 1 || l.Channels[0].Name != "ops" {
				t.Fatalf("channels after the failed batch: %+v", l.Channels)
			}
			if after := dirBytes(t, events); !bytes.Equal(before, after) {
				t.Fatalf("the failed batch left bytes in the event log (%d before, %d after)", len(before), len(after))
			}
			// The disk is back: the same changes go through.
			a.ok(&protocol.Frame{Type: protocol.TRenameChannel, Channel: "ops", NewName: "ops2"})
			if r := c.nextOfType(protocol.TRenamed); r.NewName != "ops2" {
				t.Fatalf("renamed = %+v", r)
			}
			a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "new"})
			env.close()
			if n, _, err := mustReader(t, events).Verify(); err != nil || n != seq+2 {
				t.Fatalf("verify after recovery: %d records, %v; want %d", n, err, seq+2)
			}
			env2 := newTestEnv(t, Config{DataDir: dir})
			if l := env2.register("zed", "m", "s").ok(&protocol.Frame{Type: protocol.TListChannels}); len(l.Channels) != 2 {
				t.Fatalf("channels after restart: %+v", l.Channels)
			}
		})
		t.Run("history "+op, func(t *testing.T) {
			sw := &failSwitch{op: op}
			dir := t.TempDir()
			env := newTestEnv(t, Config{DataDir: dir, failHook: sw.hook})
			a := env.register("alice", "wa", "s")
			c := env.register("carol", "wc", "s")
			a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
			a.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
			c.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
			a.ok(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: body("kept")})
			c.nextOfType(protocol.TChannelMsg)
			hist := filepath.Join(dir, datadir.HistoryDir)
			before := dirBytes(t, hist)

			sw.armed.Store(true)
			r := a.req(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: body("lost")})
			sw.armed.Store(false)
			wantErr(t, "a post on a failing disk", r, protocol.CodeInternal, "could not store this message")
			// Fan-out does not wait for the disk (docs/DATADIR.md): carol saw
			// it, but the history must not hold it.
			lost := c.nextOfType(protocol.TChannelMsg)
			if after := dirBytes(t, hist); !bytes.Equal(before, after) {
				t.Fatalf("the failed post left bytes in the history (%d before, %d after)", len(before), len(after))
			}
			next := a.ok(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: body("kept too")})
			// carol saw the refused post as seq lost.Seq; a client that pages
			// from the last seq it saw must not skip the next acknowledged
			// post.
			if next.Seq <= lost.Seq {
				t.Errorf("the post after a failed one got seq %d, the refused post's seq %d (which carol already received) was reused: a client paging with after_seq=%d never sees it", next.Seq, lost.Seq, lost.Seq)
			}
			page := c.ok(&protocol.Frame{Type: protocol.TReadSince, Channel: "ops"})
			if len(page.Messages) != 2 || *page.Messages[0].Body != "kept" || *page.Messages[1].Body != "kept too" {
				t.Fatalf("history = %+v, want the two acknowledged posts", page.Messages)
			}
			env.close()
			env2 := newTestEnv(t, Config{DataDir: dir})
			z := env2.register("zed", "m", "s")
			z.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
			if page := z.ok(&protocol.Frame{Type: protocol.TReadSince, Channel: "ops"}); len(page.Messages) != 2 {
				t.Fatalf("history after restart = %+v, want the two acknowledged posts", page.Messages)
			}
		})
	}
}

// dirBytes concatenates the segment files of a wal dir (not .broken
// copies, which keep cut bytes as evidence).
func dirBytes(t *testing.T, dir string) []byte {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, de := range des {
		if len(de.Name()) != 20 {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

// TestCrashDiskFull runs the server on a tmpfs of 1 MiB (as root, where
// mount works; skipped otherwise) and fills the disk: changes and posts
// are refused with a clear error while it is full, nothing acknowledged
// is lost, and everything works again once space returns.
func TestCrashDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", mnt, err, out)
		}
	})
	dir := filepath.Join(mnt, "data")
	env := newTestEnv(t, Config{DataDir: dir, AdminRate: -1})
	a := env.register("alice", "wa", "s")
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	a.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})

	// Fill the disk.
	filler, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := filler.Write(chunk); err != nil {
			break
		}
	}
	for {
		if _, err := filler.Write(chunk[:1]); err != nil {
			break
		}
	}
	filler.Close()

	// Keep writing until the disk refuses (a write may still fit in a
	// page already allocated).
	var ackedChannels []string
	var ackedPosts []string
	refusedChange, refusedPost := false, false
	for i := 0; i < 300 && !(refusedChange && refusedPost); i++ {
		name := fmt.Sprintf("full-%03d-%s", i, strings.Repeat("x", 40))
		r := a.req(&protocol.Frame{Type: protocol.TCreateChannel, Channel: name})
		switch {
		case r.Type == protocol.TAck:
			ackedChannels = append(ackedChannels, name)
		default:
			wantErr(t, "a change on a full disk", r, protocol.CodeInternal, "could not store this change; nothing was changed, try again")
			refusedChange = true
		}
		text := fmt.Sprintf("post %d %s", i, strings.Repeat("y", 300))
		r = a.req(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: &text})
		switch {
		case r.Type == protocol.TAck:
			ackedPosts = append(ackedPosts, text)
		default:
			wantErr(t, "a post on a full disk", r, protocol.CodeInternal, "could not store this message")
			refusedPost = true
		}
	}
	if !refusedChange || !refusedPost {
		t.Fatalf("a full disk refused no change (%v) or no post (%v)", refusedChange, refusedPost)
	}
	t.Logf("disk full: %d changes and %d posts acknowledged before the first refusals", len(ackedChannels), len(ackedPosts))
	// Space returns.
	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "space-is-back"})
	last := a.ok(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: body("space is back")})
	ackedChannels = append(ackedChannels, "space-is-back")
	ackedPosts = append(ackedPosts, "space is back")
	env.close()

	if _, _, err := mustReader(t, filepath.Join(dir, datadir.EventsDir)).Verify(); err != nil {
		t.Fatalf("the event log does not verify after a full disk: %v", err)
	}
	env2 := newTestEnv(t, Config{DataDir: dir})
	z := env2.register("zed", "m", "s")
	have := map[string]bool{}
	for _, c := range z.ok(&protocol.Frame{Type: protocol.TListChannels}).Channels {
		have[c.Name] = true
	}
	for _, name := range ackedChannels {
		if !have[name] {
			t.Errorf("acknowledged channel %s lost", name)
		}
	}
	z.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	var bodies []string
	for after := uint64(0); ; {
		p := z.ok(&protocol.Frame{Type: protocol.TReadSince, Channel: "ops", AfterSeq: &after})
		for _, m := range p.Messages {
			bodies = append(bodies, *m.Body)
		}
		after = p.NextSeq
		if !p.More {
			break
		}
	}
	for _, b := range ackedPosts {
		if !containsString(bodies, b) {
			t.Errorf("acknowledged post %.20q… lost", b)
		}
	}
	if n := len(bodies); bodies[n-1] != "space is back" || last.Seq == 0 {
		t.Errorf("last stored post %.20q, want the one after space returned", bodies[n-1])
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
