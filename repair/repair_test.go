package repair

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/datadir"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
	"github.com/conclave/conclave/server"
)

// testDataDir writes a data dir of 30 events in small segments (seq 25
// creates channel "late"), snapshots at seq 5 and 20, and a history of
// messages in channel 3 and in channel 25.
func testDataDir(t *testing.T) (string, []eventlog.Record) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, datadir.ServerIDFile), []byte("id\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := eventlog.Open(filepath.Join(dir, datadir.EventsDir), &eventlog.Options{NoSync: true, SegmentSize: 512})
	if err != nil {
		t.Fatal(err)
	}
	var es []eventlog.Entry
	for i := 1; i <= 30; i++ {
		typ, data := projections.EvChannelCreated, fmt.Sprintf(`{"channel":"c%d","visibility":"public"}`, i)
		if i%7 == 0 {
			typ, data = projections.EvBanned, fmt.Sprintf(`{"channel":"c3","user":"u%d"}`, i)
		}
		es = append(es, eventlog.Entry{TimeMs: int64(i) * 1000, Actor: "alice/wa/s", Type: typ, Data: []byte(data)})
	}
	recs, err := l.Append(es)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	for _, seq := range []uint64{5, 20} {
		err := eventlog.WriteSnapshot(filepath.Join(dir, datadir.SnapshotsDir), eventlog.Snapshot{Schema: projections.SchemaVersion, Seq: seq, Hash: recs[seq-1].Hash, Data: []byte("state")}, 5)
		if err != nil {
			t.Fatal(err)
		}
	}
	p, err := eventlog.OpenPlain(filepath.Join(dir, datadir.HistoryDir), &eventlog.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	var hs [][]byte
	for i := 1; i <= 6; i++ {
		cid := 3
		if i%2 == 0 {
			cid = 25
		}
		hs = append(hs, []byte(fmt.Sprintf(`{"cid":%d,"from":"alice/wa/s","ts_ms":%d,"body":"m%d"}`, cid, i, i)))
	}
	if _, err := p.Append(hs); err != nil {
		t.Fatal(err)
	}
	p.Close()
	return dir, recs
}

// flipRecord flips a byte in the middle of event seq's frame and returns
// its segment.
func flipRecord(t *testing.T, dir string, seq uint64) eventlog.Segment {
	t.Helper()
	segs, _ := eventlog.ListSegments(filepath.Join(dir, datadir.EventsDir))
	var seg eventlog.Segment
	for _, s := range segs {
		if s.Index <= seq {
			seg = s
		}
	}
	b, _ := os.ReadFile(seg.Path)
	off := 0
	for i := seg.Index; ; i++ {
		size, n := binary.Uvarint(b[off:])
		if i == seq {
			b[off+n+int(size)/2] ^= 0x20
			break
		}
		off += n + int(size)
	}
	os.WriteFile(seg.Path, b, 0o640)
	return seg
}

// TestCutEvents damages event 12 of 30: the plan lists events 12-30
// (12 damaged, the bans marked security), the snapshot at 20 and the
// messages of channel 25; Apply keeps events 1-11 exactly, moves the rest,
// the snapshot and those messages into the quarantine, and leaves a data
// dir with no damage.
func TestCutEvents(t *testing.T) {
	dir, recs := testDataDir(t)
	seg := flipRecord(t, dir, 12)
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "is in use by") {
		t.Fatalf("a second repair while one runs: %v", err)
	}
	plan, err := r.Inspect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := plan.Cut
	if c == nil || c.Seq() != 12 || c.Break.Segment != seg.Name || len(c.Events) != 19 {
		t.Fatalf("cut = %+v", c)
	}
	for i, e := range c.Events {
		want := uint64(12 + i)
		if e.Seq != want || (e.Damage != nil) != (want == 12) || (want != 12 && e.Type != recs[want-1].Type) {
			t.Fatalf("event %d = %+v, want seq %d", i, e, want)
		}
		if e.Security() != (want%7 == 0) {
			t.Errorf("seq %d (%s): Security() = %v", want, e.Type, e.Security())
		}
	}
	if len(c.Snapshots) != 1 || c.Snapshots[0] != "snap-00000000000000000020.zst" {
		t.Fatalf("snapshots set aside: %v", c.Snapshots)
	}
	if len(plan.History) != 3 || plan.History[0].First != 2 || plan.History[0].Damage != nil {
		t.Fatalf("history set aside: %+v", plan.History)
	}

	q, err := r.Apply(plan, time.Date(2026, 12, 7, 23, 0, 0, 0, time.UTC), "report\n")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(q) != "20261207T230000.000Z" {
		t.Errorf("quarantine %s", q)
	}
	n, last, err := mustReader(t, filepath.Join(dir, datadir.EventsDir)).Verify()
	if err != nil || n != 11 || last != recs[10].Hash {
		t.Fatalf("after the cut: %d records, %v; want 11 intact", n, err)
	}
	snaps, _ := eventlog.ListSnapshots(filepath.Join(dir, datadir.SnapshotsDir))
	if len(snaps) != 1 || filepath.Base(snaps[0]) != "snap-00000000000000000005.zst" {
		t.Fatalf("snapshots left: %v", snaps)
	}
	if _, err := os.Stat(filepath.Join(q, datadir.SnapshotsDir, "snap-00000000000000000020.zst")); err != nil {
		t.Fatal(err)
	}
	// The quarantine holds every byte of the log from the cut on.
	var moved []byte
	qe, _ := os.ReadDir(filepath.Join(q, datadir.EventsDir))
	for _, de := range qe {
		b, _ := os.ReadFile(filepath.Join(q, datadir.EventsDir, de.Name()))
		moved = append(moved, b...)
	}
	if len(qe) < 2 || !strings.HasSuffix(qe[0].Name(), ".from-seq-12") {
		t.Fatalf("quarantine/events holds %v", qe)
	}
	want := 0
	for _, rec := range recs[11:] {
		want += len(eventlog.EncodeRecord(&rec)) + 1 // one-byte... or two-byte lengths
	}
	if len(moved) < want {
		t.Fatalf("quarantine/events holds %d bytes, want at least %d", len(moved), want)
	}
	// History: channel 25's messages are gap records now, channel 3's kept.
	rd, _ := eventlog.OpenPlainReader(filepath.Join(dir, datadir.HistoryDir))
	err = rd.Scan(&eventlog.ScanOptions{OnDamage: func(se *eventlog.SegmentError) error { return se }}, func(idx uint64, d []byte) error {
		cid, ok := server.HistoryRecordChannel(d)
		switch {
		case !ok:
			return fmt.Errorf("entry %d does not decode", idx)
		case idx%2 == 0 && !bytes.Equal(d, server.HistoryGapRecord(0)):
			return fmt.Errorf("entry %d = %s, want a gap record", idx, d)
		case idx%2 == 1 && cid != 3:
			return fmt.Errorf("entry %d = %s, want channel 3's message", idx, d)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if plan, err := r.Inspect(context.Background()); err != nil || !plan.Empty() {
		t.Fatalf("after Apply: %+v, %v; want nothing left to repair", plan, err)
	}
}

func mustReader(t *testing.T, dir string) *eventlog.Reader {
	t.Helper()
	r, err := eventlog.OpenReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestOpenRefusesNonDataDir: repair does not create a data dir.
func TestOpenRefusesNonDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nothing")
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "is not a conclave data dir") {
		t.Fatalf("Open of a missing dir: %v", err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("Open created the dir")
	}
}
