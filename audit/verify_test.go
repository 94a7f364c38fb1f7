package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/datadir"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
)

func verify(t *testing.T, dir string) VerifyReport {
	t.Helper()
	rep, err := openDir(t, dir).Verify(context.Background())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

func statuses(rep VerifyReport) []SnapshotStatus {
	out := []SnapshotStatus{}
	for _, s := range rep.Snapshots {
		out = append(out, s.Status)
	}
	return out
}

func checkStatuses(t *testing.T, rep VerifyReport, want ...SnapshotStatus) {
	t.Helper()
	got := statuses(rep)
	if strings.Join(strSlice(got), ",") != strings.Join(strSlice(want), ",") {
		t.Errorf("snapshot statuses: got %v, want %v (%+v)", got, want, rep.Snapshots)
	}
}

func strSlice(ss []SnapshotStatus) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

// snapshotDir returns a closed data dir holding the scenario with
// snapshots at seq 6 and 13.
func snapshotDir(t *testing.T) (*testDir, []string) {
	td := newTestDir(t)
	td.add(scenario[:6]...)
	p6 := td.snapshot()
	td.add(scenario[6:]...)
	p13 := td.snapshot()
	td.close()
	return td, []string{p6, p13}
}

func TestVerifyOK(t *testing.T) {
	td, _ := snapshotDir(t)
	rep := verify(t, td.dir)
	if !rep.OK() || rep.Err() != nil {
		t.Fatalf("got %v, want OK", rep.Err())
	}
	if rep.Records != 13 || rep.LastHash != td.recs[12].Hash || rep.Break != nil || rep.Invalid != nil {
		t.Errorf("got %d records, last hash %x, break %v, invalid %v; want 13, %x, none, none",
			rep.Records, rep.LastHash[:4], rep.Break, rep.Invalid, td.recs[12].Hash[:4])
	}
	checkStatuses(t, rep, SnapshotOK, SnapshotOK)
	if rep.Snapshots[0].Seq != 6 || rep.Snapshots[0].File != "snap-00000000000000000006.zst" {
		t.Errorf("got snapshot %+v, want seq 6", rep.Snapshots[0])
	}
	if !rep.HistoryChecked || rep.History.Records != 0 || len(rep.History.Damaged) != 0 {
		t.Errorf("history: checked %v, %+v; want checked and empty", rep.HistoryChecked, rep.History)
	}
}

// TestVerifyHistory flips a byte in two history records, in two segments:
// verify names the file and seq of each, counts the intact ones, and is
// not OK; the event log is not blamed.
func TestVerifyHistory(t *testing.T) {
	td, _ := snapshotDir(t)
	hist := filepath.Join(td.dir, datadir.HistoryDir)
	p, err := eventlog.OpenPlain(hist, &eventlog.Options{NoSync: true, SegmentSize: 512})
	if err != nil {
		t.Fatal(err)
	}
	var datas [][]byte
	for i := 1; i <= 20; i++ {
		datas = append(datas, []byte(fmt.Sprintf(`{"cid":1,"from":"alice/laptop/cli-1","ts_ms":%d,"body":"message number %d"}`, i, i)))
	}
	if _, err := p.Append(datas); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if rep := verify(t, td.dir); !rep.OK() || rep.History.Records != 20 || rep.History.First != 1 || rep.History.Last != 20 {
		t.Fatalf("intact history: %v, %+v", rep.Err(), rep.History)
	}
	segs, _ := eventlog.ListSegments(hist)
	if len(segs) < 3 {
		t.Fatalf("%d history segments, want several", len(segs))
	}
	flip := func(seg eventlog.Segment, k int) uint64 {
		b, _ := os.ReadFile(seg.Path)
		off := 0
		for i := 0; i < k; i++ {
			off += 1 + int(b[off]) // one-byte lengths: entries are short
		}
		b[off+1+int(b[off])/2] ^= 0x01
		os.WriteFile(seg.Path, b, 0o600)
		return seg.Index + uint64(k)
	}
	bad1, bad2 := flip(segs[0], 1), flip(segs[len(segs)-1], 0)
	rep := verify(t, td.dir)
	if rep.OK() || rep.Break != nil {
		t.Fatalf("got OK %v, break %v; want history damage only", rep.OK(), rep.Break)
	}
	d := rep.History.Damaged
	if len(d) != 2 || d[0].Seq != bad1 || d[0].Segment != segs[0].Name || d[1].Seq != bad2 || d[1].Segment != segs[len(segs)-1].Name {
		t.Fatalf("damaged = %v, want seq %d in %s and seq %d in %s", d, bad1, segs[0].Name, bad2, segs[len(segs)-1].Name)
	}
	if rep.History.Records != 18 {
		t.Errorf("intact records %d, want 18", rep.History.Records)
	}
	want := fmt.Sprintf("history record damaged at history/%s, seq %d (byte ", segs[0].Name, bad1)
	if msg := rep.Err().Error(); !strings.Contains(msg, want) || !strings.Contains(msg, "(2 damaged history records in all)") {
		t.Errorf("Err() = %q, want it to contain %q and the count", msg, want)
	}
}

func TestVerifyEmpty(t *testing.T) {
	td := newTestDir(t)
	td.close()
	rep := verify(t, td.dir)
	if !rep.OK() || rep.Records != 0 || len(rep.Snapshots) != 0 {
		t.Errorf("got %+v, want an OK empty report", rep)
	}
}

func TestVerifyFlippedByte(t *testing.T) {
	td, _ := snapshotDir(t)
	seg, off, n := recordAt(t, td.dir, 7)
	if seg == segmentFiles(t, td.dir)[0] {
		t.Fatalf("record 7 is in the first segment; the test wants a middle one")
	}
	flipByte(t, seg, off+n/2)
	rep := verify(t, td.dir)
	if rep.Break == nil {
		t.Fatal("no break found")
	}
	if rep.Break.Seq != 7 || rep.Break.Segment != filepath.Base(seg) || !errors.Is(rep.Break, eventlog.ErrChecksum) {
		t.Errorf("got break %v, want a checksum mismatch at seq 7 in %s", rep.Break, filepath.Base(seg))
	}
	if rep.Records != 6 || rep.LastHash != td.recs[5].Hash {
		t.Errorf("got %d records verified, want 6", rep.Records)
	}
	checkStatuses(t, rep, SnapshotOK, SnapshotUnchecked)
	err := rep.Err()
	var se *eventlog.SegmentError
	if err == nil || !errors.As(err, &se) || !strings.Contains(err.Error(), filepath.Base(seg)) || !strings.Contains(err.Error(), "seq 7") {
		t.Errorf("Err() = %v, want one naming segment %s and seq 7", err, filepath.Base(seg))
	}
}

func TestVerifyChainBreak(t *testing.T) {
	// A record rewritten with a valid checksum but the wrong prev: only
	// the hash chain catches it.
	td, _ := snapshotDir(t)
	seg, off, n := recordAt(t, td.dir, 9)
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := eventlog.DecodeRecord(b[off : off+n])
	if err != nil {
		t.Fatal(err)
	}
	rec.Prev[0] ^= 1
	enc := eventlog.EncodeRecord(&rec)
	if len(enc) != n {
		t.Fatalf("re-encoded record is %d bytes, want %d", len(enc), n)
	}
	copy(b[off:], enc)
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	rep := verify(t, td.dir)
	if rep.Break == nil || rep.Break.Seq != 9 || !errors.Is(rep.Break, eventlog.ErrChain) {
		t.Errorf("got break %v, want a chain break at seq 9", rep.Break)
	}
}

func TestVerifyDamagedSnapshot(t *testing.T) {
	td, paths := snapshotDir(t)
	fi, err := os.Stat(paths[1])
	if err != nil {
		t.Fatal(err)
	}
	flipByte(t, paths[1], int(fi.Size()/2))
	rep := verify(t, td.dir)
	checkStatuses(t, rep, SnapshotOK, SnapshotUnusable)
	if rep.Break != nil || rep.Records != 13 {
		t.Errorf("the log is intact: got break %v, %d records", rep.Break, rep.Records)
	}
	if err := rep.Err(); err == nil || !strings.Contains(err.Error(), "snap-00000000000000000013.zst") {
		t.Errorf("Err() = %v, want one naming the snapshot", err)
	}
	if rep.Snapshots[1].Detail == "" {
		t.Error("no reason given for the unusable snapshot")
	}
}

func TestVerifySnapshotMismatch(t *testing.T) {
	tests := []struct {
		name   string
		write  func(td *testDir) eventlog.Snapshot
		status SnapshotStatus
		detail string
	}{
		{"wrong hash", func(td *testDir) eventlog.Snapshot {
			data, _ := td.state.MarshalSnapshot()
			return eventlog.Snapshot{Seq: 13, Hash: td.recs[11].Hash, Data: data}
		}, SnapshotMismatch, "is not the hash"},
		{"wrong state", func(td *testDir) eventlog.Snapshot {
			data, _ := projections.New().MarshalSnapshot()
			return eventlog.Snapshot{Seq: 13, Hash: td.recs[12].Hash, Data: data}
		}, SnapshotMismatch, "state differs"},
		{"ahead of the log", func(td *testDir) eventlog.Snapshot {
			data, _ := td.state.MarshalSnapshot()
			return eventlog.Snapshot{Seq: 20, Hash: td.recs[12].Hash, Data: data}
		}, SnapshotAhead, "log ends at seq 13"},
		{"another schema", func(td *testDir) eventlog.Snapshot {
			data, _ := td.state.MarshalSnapshot()
			return eventlog.Snapshot{Schema: projections.SchemaVersion + 1, Seq: 13, Hash: td.recs[12].Hash, Data: data}
		}, SnapshotUnusable, "schema"},
		{"state does not decode", func(td *testDir) eventlog.Snapshot {
			return eventlog.Snapshot{Seq: 13, Hash: td.recs[12].Hash, Data: []byte("not gob")}
		}, SnapshotUnusable, "invalid event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			td := scenarioDir(t)
			s := tt.write(td)
			if s.Schema == 0 {
				s.Schema = projections.SchemaVersion
			}
			if err := eventlog.WriteSnapshot(filepath.Join(td.dir, datadir.SnapshotsDir), s, 3); err != nil {
				t.Fatal(err)
			}
			rep := verify(t, td.dir)
			checkStatuses(t, rep, tt.status)
			if !strings.Contains(rep.Snapshots[0].Detail, tt.detail) {
				t.Errorf("detail %q does not mention %q", rep.Snapshots[0].Detail, tt.detail)
			}
			if rep.OK() {
				t.Error("report is OK")
			}
		})
	}
}

func TestVerifyInvalidRecord(t *testing.T) {
	td := newTestDir(t)
	td.add(scenario[:3]...)
	td.snapshot()
	if _, err := td.log.Append([]eventlog.Entry{{TimeMs: t0.UnixMilli(), Actor: "server",
		Type: projections.EvACLAdded, Data: []byte(`{"channel":"nope","user":"alice"}`)}}); err != nil {
		t.Fatal(err)
	}
	td.close()
	rep := verify(t, td.dir)
	if rep.Invalid == nil || rep.InvalidSeq != 4 || !errors.Is(rep.Invalid, projections.ErrInvalidEvent) {
		t.Errorf("got invalid %v at %d, want seq 4", rep.Invalid, rep.InvalidSeq)
	}
	if rep.Records != 4 || rep.Break != nil {
		t.Errorf("got %d records, break %v; want 4, none", rep.Records, rep.Break)
	}
	checkStatuses(t, rep, SnapshotOK)
	if err := rep.Err(); err == nil || !strings.Contains(err.Error(), "seq 4") {
		t.Errorf("Err() = %v, want one naming seq 4", err)
	}
}

// TestVerifyTornTail: an incomplete last record is the end of the log,
// for every reader.
func TestVerifyTornTail(t *testing.T) {
	td := scenarioDir(t)
	segs := segmentFiles(t, td.dir)
	last := segs[len(segs)-1]
	f, err := os.OpenFile(last, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A frame header announcing 200 bytes, and only 10 of them.
	if _, err := f.Write(append([]byte{200, 1}, make([]byte, 10)...)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	rep := verify(t, td.dir)
	if !rep.OK() || rep.Records != 13 {
		t.Errorf("got %v with %d records, want OK with 13", rep.Err(), rep.Records)
	}
	d := openDir(t, td.dir)
	if got := events(t, d, Filter{}); len(got) != 13 {
		t.Errorf("got %d events, want 13", len(got))
	}
	if _, seq, err := d.StateAt(context.Background(), t0.Add(1000*time.Hour), false); err != nil || seq != 13 {
		t.Errorf("StateAt: got seq %d, %v; want 13", seq, err)
	}
}
