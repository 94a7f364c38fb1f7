package backup

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
)

func TestRoundTrip(t *testing.T) {
	src := newDataDir(t, dirSpec{events: 1000, snapshots: []uint64{300, 600}, history: 200, truncate: 50})
	before := tree(t, src)

	out, m := mustCreate(t, src)
	if !reflect.DeepEqual(tree(t, src), before) {
		t.Fatal("Create changed the data dir")
	}
	want := Manifest{FormatVersion: 1, ServerID: strings.TrimSpace(testServerID), EventSeq: 1000,
		SnapshotSeq: 600, HistoryFirst: 50, HistoryLast: 200}
	srcRecs := records(t, src)
	want.LastHash = hex.EncodeToString(srcRecs[len(srcRecs)-1].Hash[:])
	got := m
	got.CreatedAt, got.Files = time.Time{}, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("manifest:\n got %+v\nwant %+v", got, want)
	}
	if m.Files[0].Path != "server-id" || m.Files[1].Path != "snapshots/snap-00000000000000000600.zst" {
		t.Errorf("files start %v", m.Files[:2])
	}
	// No temporary file is left beside the backup.
	if des, _ := os.ReadDir(filepath.Dir(out)); len(des) != 1 {
		t.Errorf("backup dir holds %d entries, want 1", len(des))
	}

	for _, name := range []string{"new", "empty", "trailing slash"} {
		t.Run(name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "restored")
			if name == "trailing slash" {
				dst += "/"
			}
			if name == "empty" {
				if err := os.Mkdir(dst, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			rm, err := Restore(context.Background(), out, dst, io.Discard)
			if err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if !reflect.DeepEqual(rm, m) {
				t.Errorf("Restore manifest differs from Create's:\n got %+v\nwant %+v", rm, m)
			}
			// Same files, byte for byte, except the LOCK and the two
			// older snapshots.
			restored := tree(t, dst)
			for name, b := range before {
				if name == "LOCK" || strings.HasPrefix(name, "snapshots/") && !strings.Contains(name, "600") {
					if _, ok := restored[name]; ok {
						t.Errorf("restored %s", name)
					}
					continue
				}
				if !bytes.Equal(restored[name], b) {
					t.Errorf("restored %s differs (%d bytes, want %d)", name, len(restored[name]), len(b))
				}
			}
			if len(restored) != len(m.Files) {
				t.Errorf("restored files %v, want the %d of the manifest", names(restored), len(m.Files))
			}
			dstRecs := records(t, dst)
			if !reflect.DeepEqual(dstRecs, srcRecs) {
				t.Errorf("restored %d records, not equal to the source's %d", len(dstRecs), len(srcRecs))
			}
			checkUsable(t, dst, srcRecs, 50, 200)
		})
	}
}

// checkUsable opens a restored dir the way a server does: the event log
// for appending, the snapshot plus replay, the history log.
func checkUsable(t *testing.T, dir string, want []eventlog.Record, histFirst, histLast uint64) {
	t.Helper()
	l, err := eventlog.Open(filepath.Join(dir, eventsDir), &eventlog.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.LastSeq() != uint64(len(want)) {
		t.Fatalf("restored log ends at %d, want %d", l.LastSeq(), len(want))
	}
	snap, err := eventlog.LoadNewestSnapshot(filepath.Join(dir, snapshotsDir), projections.SchemaVersion, nil)
	if err != nil {
		t.Fatal(err)
	}
	state, after, prev := projections.New(), uint64(0), [32]byte{}
	if snap != nil {
		if state, err = projections.UnmarshalSnapshot(snap.Data); err != nil {
			t.Fatal(err)
		}
		after, prev = snap.Seq, snap.Hash
	}
	if err := l.Replay(after, prev, func(r eventlog.Record) error {
		return state.Apply(r.Seq, projections.Event{Type: r.Type, Data: r.Data, Actor: r.Actor, TimeMs: r.TimeMs})
	}); err != nil {
		t.Fatal(err)
	}
	full := projections.New()
	for _, r := range want {
		if err := full.Apply(r.Seq, projections.Event{Type: r.Type, Data: r.Data, Actor: r.Actor, TimeMs: r.TimeMs}); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := state.MarshalSnapshot()
	b, _ := full.MarshalSnapshot()
	if !bytes.Equal(a, b) {
		t.Error("state from the restored snapshot and log differs from a full replay of the source")
	}
	if _, err := l.Append(testEntries(uint64(len(want))+1, 4)); err != nil {
		t.Errorf("append to the restored log: %v", err)
	}
	p, err := eventlog.OpenPlain(filepath.Join(dir, historyDir), &eventlog.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.FirstIndex() != histFirst || p.LastIndex() != histLast {
		t.Errorf("restored history %d-%d, want %d-%d", p.FirstIndex(), p.LastIndex(), histFirst, histLast)
	}
	if err := p.Scan(0, func(i uint64, data []byte) error {
		if !bytes.Equal(data, historyData(i)) {
			t.Errorf("history %d = %q", i, data)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestEmptyDataDir(t *testing.T) {
	src := newDataDir(t, dirSpec{})
	out, m := mustCreate(t, src)
	if m.EventSeq != 0 || m.SnapshotSeq != 0 || m.LastHash != strings.Repeat("0", 64) {
		t.Errorf("manifest %+v", m)
	}
	// A fresh plain log is one empty segment: first 1, last 0.
	if m.HistoryFirst != 1 || m.HistoryLast != 0 {
		t.Errorf("history %d-%d, want 1-0", m.HistoryFirst, m.HistoryLast)
	}
	dst := filepath.Join(t.TempDir(), "r")
	if _, err := Restore(context.Background(), out, dst, nil); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{eventsDir, historyDir, snapshotsDir} {
		if fi, err := os.Stat(filepath.Join(dst, d)); err != nil || !fi.IsDir() {
			t.Errorf("restored dir lacks %s/", d)
		}
	}
	checkUsable(t, dst, nil, 1, 0)
}

func TestCreateRefuses(t *testing.T) {
	src := newDataDir(t, dirSpec{events: 10})
	notData := t.TempDir()
	os.Mkdir(filepath.Join(notData, eventsDir), 0o700)
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	exists := filepath.Join(t.TempDir(), "exists.tar.zst")
	os.WriteFile(exists, []byte("keep"), 0o600)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(filepath.Join(src, eventsDir), link); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, dir, out string
		kind           error
		msg            string
	}{
		{"missing dir", filepath.Join(t.TempDir(), "nope"), "", ErrNotDataDir, "does not exist"},
		{"not a dir", file, "", ErrNotDataDir, "is not a directory"},
		{"no server-id", notData, "", ErrNotDataDir, "is not a conclave data dir (no server-id file)"},
		{"out exists", src, exists, ErrExists, "already exists"},
		{"out inside the data dir", src, filepath.Join(src, "b.tar.zst"), nil, "inside the data dir"},
		{"out inside the data dir through a link", src, filepath.Join(link, "b.tar.zst"), nil, "inside the data dir"},
		{"out in a missing dir", src, filepath.Join(t.TempDir(), "no", "b.tar.zst"), nil, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := tc.out
			if out == "" {
				out = filepath.Join(t.TempDir(), "b.tar.zst")
			}
			before := tree(t, src)
			_, err := Create(context.Background(), tc.dir, out, nil)
			if err == nil || tc.kind != nil && !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want an error matching %v containing %q", err, tc.kind, tc.msg)
			}
			if !reflect.DeepEqual(tree(t, src), before) {
				t.Error("the data dir changed")
			}
			if b, _ := os.ReadFile(exists); string(b) != "keep" {
				t.Error("an existing file was overwritten")
			}
			if out != exists {
				if _, err := os.Lstat(out); err == nil {
					t.Error("a backup file was written")
				}
			}
		})
	}
}

// lastSegment returns the path of the last event segment in dir.
func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	segs, err := eventlog.ListSegments(filepath.Join(dir, eventsDir))
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments: %v %v", segs, err)
	}
	return segs[len(segs)-1].Path
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// frame returns record seq (with prev) framed as tidwall/wal writes it.
func frame(seq uint64, prev [32]byte) []byte {
	e := testEntry(seq)
	rec := eventlog.EncodeRecord(&eventlog.Record{Seq: seq, TimeMs: e.TimeMs, Actor: e.Actor, Type: e.Type, Data: e.Data, Prev: prev})
	return append(binary.AppendUvarint(nil, uint64(len(rec))), rec...)
}

func TestTornTail(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(whole []byte) []byte // what to append, given the frame of record 101
	}{
		{"half a frame", func(b []byte) []byte { return b[:len(b)/2] }},
		{"length only", func(b []byte) []byte { return b[:1] }},
		{"bad checksum", func(b []byte) []byte { c := bytes.Clone(b); c[len(c)-1] ^= 1; return c }},
		{"zero filled", func(b []byte) []byte { return make([]byte, 300) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newDataDir(t, dirSpec{events: 100, snapshots: []uint64{100}})
			recs := records(t, src)
			seg := lastSegment(t, src)
			appendBytes(t, seg, tc.damage(frame(101, recs[99].Hash)))
			before := tree(t, src)

			out, m := mustCreate(t, src)
			if m.EventSeq != 100 || m.SnapshotSeq != 100 {
				t.Errorf("event_seq %d snapshot_seq %d, want 100 and 100", m.EventSeq, m.SnapshotSeq)
			}
			if !reflect.DeepEqual(tree(t, src), before) {
				t.Error("Create changed the data dir (repaired the tail?)")
			}
			dst := filepath.Join(t.TempDir(), "r")
			if _, err := Restore(context.Background(), out, dst, nil); err != nil {
				t.Fatal(err)
			}
			if got := records(t, dst); !reflect.DeepEqual(got, recs) {
				t.Errorf("restored %d records, want the %d before the torn one", len(got), len(recs))
			}
			restored, _ := os.ReadFile(filepath.Join(dst, eventsDir, filepath.Base(seg)))
			if orig := before["events/"+filepath.Base(seg)]; !bytes.HasPrefix(orig, restored) || len(restored) >= len(orig) {
				t.Error("the restored last segment is not the source's cut before the torn record")
			}
		})
	}
}

func TestCreateRefusesDamage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   error
	}{
		{"bad record followed by a good one", func(t *testing.T, dir string) {
			recs := records(t, dir)
			bad := frame(101, recs[99].Hash)
			bad[len(bad)-1] ^= 1
			appendBytes(t, lastSegment(t, dir), append(bad, frame(102, recs[99].Hash)...))
		}, eventlog.ErrChecksum},
		{"broken chain at the tail", func(t *testing.T, dir string) {
			appendBytes(t, lastSegment(t, dir), frame(101, [32]byte{1}))
		}, eventlog.ErrChain},
		{"flipped byte in the first segment", func(t *testing.T, dir string) {
			p := filepath.Join(dir, eventsDir, eventlog.SegmentName(1))
			b, _ := os.ReadFile(p)
			b[100] ^= 0x10
			os.WriteFile(p, b, 0o600)
		}, eventlog.ErrChecksum},
		{"missing first segment", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, eventsDir, eventlog.SegmentName(1)))
		}, eventlog.ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newDataDir(t, dirSpec{events: 100})
			tc.damage(t, src)
			out := filepath.Join(t.TempDir(), "b.tar.zst")
			_, err := Create(context.Background(), src, out, nil)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), "events/0") {
				t.Fatalf("got %v, want an error naming the segment and matching %v", err, tc.want)
			}
			if des, _ := os.ReadDir(filepath.Dir(out)); len(des) != 0 {
				t.Errorf("left %d files beside the output", len(des))
			}
		})
	}
}

func uvarintLen(b []byte) int {
	_, n := binary.Uvarint(b)
	return n
}

func TestRelativePaths(t *testing.T) {
	src := newDataDir(t, dirSpec{events: 20, history: 5})
	t.Chdir(filepath.Dir(src))
	if _, err := Create(context.Background(), "data", "data/b.tar.zst", nil); err == nil || !strings.Contains(err.Error(), "inside the data dir") {
		t.Fatalf("backup into the data dir by a relative path: %v", err)
	}
	abs, _ := filepath.Abs("data")
	if _, err := Create(context.Background(), abs, "./data/events/../b.tar.zst", nil); err == nil || !strings.Contains(err.Error(), "inside the data dir") {
		t.Fatalf("backup into the data dir by a mixed path: %v", err)
	}
	if _, err := Create(context.Background(), "./data/", "b.tar.zst", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(context.Background(), "b.tar.zst", "r", nil); err != nil {
		t.Fatal(err)
	}
	if got := records(t, "r"); len(got) != 20 {
		t.Errorf("restored %d records", len(got))
	}
}
