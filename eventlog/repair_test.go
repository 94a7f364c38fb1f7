package eventlog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidwall/wal"
)

// pristine writes n test entries to a fresh log in a temp dir and returns
// the dir and the records.
func pristine(t *testing.T, n int, opts *Options) (string, []Record) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pristine")
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	recs := mustAppend(t, l, testEntries(1, n))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, recs
}

// TestTornTailEveryOffset cuts the last segment at every byte offset
// inside the last record: Open must keep the first n-1 records, keep the
// cut bytes and let Append carry on at seq n.
func TestTornTailEveryOffset(t *testing.T) {
	const n = 12
	src, recs := pristine(t, n, testOpts())
	segs := segmentsOf(t, src)
	if len(segs) < 2 {
		t.Fatalf("want several segments, got %d", len(segs))
	}
	last := segs[len(segs)-1]
	offs, data := frameOffsets(t, last.Path)
	recStart := offs[len(offs)-1]
	for cut := recStart; cut < len(data); cut++ {
		t.Run(fmt.Sprint(cut-recStart), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "events")
			copyDir(t, src, dir)
			writeFile(t, filepath.Join(dir, last.Name), data[:cut])
			var logs logBuffer
			opts := testOpts()
			opts.Logger = logs.logger()
			l := openLog(t, dir, opts)
			if l.LastSeq() != n-1 || l.LastHash() != recs[n-2].Hash {
				t.Fatalf("got last seq %d, want %d with its hash", l.LastSeq(), n-1)
			}
			broken := brokenFiles(t, dir)
			if cut == recStart {
				if len(broken) != 0 {
					t.Fatalf("nothing to cut, yet got %v", broken)
				}
			} else {
				want := data[recStart:cut]
				if got := broken[last.Name+".broken"]; !bytes.Equal(got, want) {
					t.Fatalf(".broken holds %d bytes, want the %d cut", len(got), len(want))
				}
				if !strings.Contains(logs.String(), "torn log tail cut") || !strings.Contains(logs.String(), fmt.Sprintf("cut_bytes=%d", len(want))) {
					t.Fatalf("no warning with the bytes cut: %s", logs.String())
				}
			}
			got := mustAppend(t, l, testEntries(n, 1))
			if got[0].Seq != n || got[0].Prev != recs[n-2].Hash {
				t.Fatalf("append after repair: got seq %d", got[0].Seq)
			}
			checkRecords(t, replayAll(t, l), testEntries(1, n))
		})
	}
}

func TestZeroFilledTail(t *testing.T) {
	const n = 10
	src, recs := pristine(t, n, testOpts())
	last := segmentsOf(t, src)[len(segmentsOf(t, src))-1]
	offs, data := frameOffsets(t, last.Path)
	recStart := offs[len(offs)-1]
	cases := []struct {
		name string
		file []byte
		keep int // records that survive
	}{
		{"16 zero bytes appended", append(append([]byte(nil), data...), make([]byte, 16)...), n},
		{"4096 zero bytes appended", append(append([]byte(nil), data...), make([]byte, 4096)...), n},
		{"one zero byte appended", append(append([]byte(nil), data...), 0), n},
		{"last record zeroed", append(append([]byte(nil), data[:recStart]...), make([]byte, len(data)-recStart)...), n - 1},
		{"last record payload zeroed", func() []byte {
			b := append([]byte(nil), data...)
			clear(b[recStart+2:])
			return b
		}(), n - 1},
		{"bad crc in last record", func() []byte {
			b := append([]byte(nil), data...)
			b[len(b)-1] ^= 1
			return b
		}(), n - 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "events")
			copyDir(t, src, dir)
			writeFile(t, filepath.Join(dir, last.Name), c.file)
			l := openLog(t, dir, testOpts())
			if l.LastSeq() != uint64(c.keep) || l.LastHash() != recs[c.keep-1].Hash {
				t.Fatalf("got last seq %d, want %d", l.LastSeq(), c.keep)
			}
			if b := brokenFiles(t, dir)[last.Name+".broken"]; len(b) != len(c.file)-len(readFile(t, filepath.Join(dir, last.Name))) || len(b) == 0 {
				t.Fatalf(".broken has %d bytes", len(b))
			}
			mustAppend(t, l, testEntries(c.keep+1, 1))
			checkRecords(t, replayAll(t, l), testEntries(1, c.keep+1))
		})
	}
}

// TestRepairKeepsEvidence checks that a second repair of the same segment
// does not overwrite the first .broken copy.
func TestRepairKeepsEvidence(t *testing.T) {
	dir, _ := pristine(t, 3, testOpts())
	seg := segmentsOf(t, dir)[0]
	for i := 0; i < 2; i++ {
		f, _ := os.OpenFile(seg.Path, os.O_APPEND|os.O_WRONLY, 0)
		f.Write([]byte{byte(0x80 + i)})
		f.Close()
		l := openLog(t, dir, testOpts())
		l.Close()
	}
	b := brokenFiles(t, dir)
	if len(b) != 2 || b[seg.Name+".broken"][0] != 0x80 || b[seg.Name+".broken.1"][0] != 0x81 {
		t.Fatalf("got broken files %v", b)
	}
	// The wal and the Reader ignore them.
	l := openLog(t, dir, testOpts())
	if l.LastSeq() != 3 {
		t.Fatalf("LastSeq %d", l.LastSeq())
	}
}

func TestDamageNotRepaired(t *testing.T) {
	const n = 12
	src, _ := pristine(t, n, testOpts())
	segs := segmentsOf(t, src)
	first, last := segs[0], segs[len(segs)-1]
	if last.Index+1 >= n {
		t.Fatalf("want at least 3 records in the last segment, it starts at %d", last.Index)
	}
	lastOffs, lastData := frameOffsets(t, last.Path)
	firstOffs, firstData := frameOffsets(t, first.Path)
	mid := 1 // a record in the middle of the last segment
	midSeq := last.Index + uint64(mid)

	type damage struct {
		name    string
		seg     Segment
		file    []byte
		openErr []error // nil: Open succeeds and Replay fails instead
		seq     uint64
		replay  []error
	}
	flip := func(data []byte, off int) []byte {
		b := append([]byte(nil), data...)
		b[off] ^= 0x40
		return b
	}
	cases := []damage{
		{
			name: "flipped byte in a middle record of the last segment",
			seg:  last, file: flip(lastData, lastOffs[mid]+30),
			openErr: []error{ErrCorrupt, ErrChecksum}, seq: midSeq, replay: []error{ErrChecksum},
		},
		{
			name: "length of a middle record made huge",
			seg:  last, file: func() []byte {
				b := append([]byte(nil), lastData...)
				b[lastOffs[mid]+1] = 0x7f // second uvarint byte: length ~16 KiB, past the end
				return b
			}(),
			openErr: []error{ErrCorrupt}, seq: midSeq, replay: []error{ErrCorrupt},
		},
		{
			name: "length of a middle record made shorter",
			seg:  last, file: func() []byte {
				b := append([]byte(nil), lastData...)
				b[lastOffs[mid]] ^= 0x04
				return b
			}(),
			openErr: []error{ErrCorrupt, ErrChecksum}, seq: midSeq, replay: []error{ErrChecksum},
		},
		{
			name: "flipped byte in the first segment",
			seg:  first, file: flip(firstData, firstOffs[2]+40),
			seq: 3, replay: []error{ErrChecksum},
		},
		{
			name: "first segment cut short",
			seg:  first, file: firstData[:firstOffs[len(firstOffs)-1]+10],
			seq: uint64(len(firstOffs)), replay: []error{ErrCorrupt},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "events")
			copyDir(t, src, dir)
			writeFile(t, filepath.Join(dir, c.seg.Name), c.file)
			before := readFile(t, filepath.Join(dir, c.seg.Name))

			r, err := OpenReader(dir)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = r.Verify()
			wantSegmentError(t, err, c.seg.Name, c.seq, c.replay...)

			l, err := Open(dir, testOpts())
			if c.openErr != nil {
				wantSegmentError(t, err, c.seg.Name, c.seq, c.openErr...)
				if !bytes.Equal(readFile(t, filepath.Join(dir, c.seg.Name)), before) || len(brokenFiles(t, dir)) != 0 {
					t.Fatal("Open changed a segment it refused to repair")
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer l.Close()
			err = l.Replay(0, [32]byte{}, func(Record) error { return nil })
			wantSegmentError(t, err, c.seg.Name, c.seq, c.replay...)
		})
	}
	t.Run("gap between segments", func(t *testing.T) {
		// The first segment ends one record early: its successor starts
		// at an index the wal would panic on.
		dir := filepath.Join(t.TempDir(), "events")
		copyDir(t, src, dir)
		writeFile(t, filepath.Join(dir, first.Name), firstData[:firstOffs[len(firstOffs)-1]])
		l := openLog(t, dir, testOpts())
		err := l.Replay(0, [32]byte{}, func(Record) error { return nil })
		wantSegmentError(t, err, segs[1].Name, segs[1].Index-1, ErrCorrupt)
		_, err = l.Read(segs[1].Index - 1)
		wantSegmentError(t, err, first.Name, segs[1].Index-1, ErrCorrupt)
		r, _ := OpenReader(dir)
		_, _, err = r.Verify()
		wantSegmentError(t, err, segs[1].Name, segs[1].Index-1, ErrCorrupt)
	})
}

// writeRaw writes payloads to a log dir with tidwall/wal directly.
func writeRaw(t *testing.T, dir string, payloads ...[]byte) {
	t.Helper()
	w, err := wal.Open(dir, &wal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	last, _ := w.LastIndex()
	for i, p := range payloads {
		if err := w.Write(last+uint64(i)+1, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestChainAndFormatInTail(t *testing.T) {
	r1 := Record{Seq: 1, Actor: "server", Type: "a"}
	b1 := EncodeRecord(&r1)
	h1, _ := DecodeRecord(b1)
	good2 := EncodeRecord(&Record{Seq: 2, Type: "b", Prev: h1.Hash})
	badPrev2 := EncodeRecord(&Record{Seq: 2, Type: "b", Prev: [32]byte{9}})
	wrongSeq2 := EncodeRecord(&Record{Seq: 5, Type: "b", Prev: h1.Hash})
	newer2 := append([]byte(nil), good2...)
	newer2[0] = FormatVersion + 1
	newer2 = withCRC(newer2)
	version0 := append([]byte(nil), good2...)
	version0[0] = 0
	version0 = withCRC(version0)
	h2, _ := DecodeRecord(good2)
	good3 := EncodeRecord(&Record{Seq: 3, Type: "c", Prev: h2.Hash})

	cases := []struct {
		name     string
		payloads [][]byte
		open     []error
		verify   []error
	}{
		{"broken chain", [][]byte{b1, badPrev2, good3}, []error{ErrCorrupt, ErrChain}, []error{ErrChain}},
		{"broken chain at the end", [][]byte{b1, badPrev2}, []error{ErrCorrupt, ErrChain}, []error{ErrChain}},
		{"malformed record with a good checksum at the end", [][]byte{b1, version0}, []error{ErrCorrupt}, []error{ErrCorrupt}},
		{"wrong seq", [][]byte{b1, wrongSeq2}, []error{ErrCorrupt}, []error{ErrCorrupt}},
		{"newer format at the end", [][]byte{b1, newer2}, []error{ErrNewerFormat}, []error{ErrNewerFormat}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeRaw(t, dir, c.payloads...)
			_, err := Open(dir, testOpts())
			wantSegmentError(t, err, SegmentName(1), 2, c.open...)
			r, _ := OpenReader(dir)
			_, _, err = r.Verify()
			wantSegmentError(t, err, SegmentName(1), 2, c.verify...)
		})
	}
}

// failOnce returns a FailHook failing the first call with op after arm is
// set, and a counter of the failures.
func failOnce(op string) (hook func(string) error, arm func(), fired *int) {
	armed := false
	n := 0
	return func(o string) error {
		if armed && o == op {
			armed = false
			n++
			return fmt.Errorf("injected %s failure", op)
		}
		return nil
	}, func() { armed = true }, &n
}

func TestFailedBatch(t *testing.T) {
	for _, op := range []string{OpWrite, OpSync, OpSyncDir} {
		for _, sync := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/sync=%v", op, sync), func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "events")
				hook, arm, fired := failOnce(op)
				opts := &Options{NoSync: !sync, SegmentSize: 2048, FailHook: hook}
				l := openLog(t, dir, opts)
				old := mustAppend(t, l, testEntries(1, 10))
				segsBefore := len(segmentsOf(t, dir))

				arm()
				// Enough for a segment roll, so every op is reached.
				_, err := l.Append(testEntries(11, 12))
				if err == nil || *fired != 1 || !strings.Contains(err.Error(), "injected") {
					t.Fatalf("Append with failing %s: got %v (fired %d)", op, err, *fired)
				}
				if l.LastSeq() != 10 || l.LastHash() != old[9].Hash {
					t.Fatalf("LastSeq %d after a failed batch, want 10", l.LastSeq())
				}
				// Nothing of the batch is left on disk.
				if got := len(segmentsOf(t, dir)); got != segsBefore {
					t.Fatalf("%d segments after the failed batch, want %d", got, segsBefore)
				}
				r, _ := OpenReader(dir)
				if count, last, err := r.Verify(); err != nil || count != 10 || last != old[9].Hash {
					t.Fatalf("disk after failure: %d records, %v", count, err)
				}
				if op != OpWrite && len(brokenFiles(t, dir)) == 0 {
					t.Fatal("written-then-failed batch left no .broken copy")
				}

				// The log works again.
				again := mustAppend(t, l, testEntries(11, 12))
				if again[0].Seq != 11 || again[0].Prev != old[9].Hash {
					t.Fatalf("append after failure: got seq %d", again[0].Seq)
				}
				mustAppend(t, l, testEntries(23, 3))
				l.Close()
				l = openLog(t, dir, &Options{NoSync: true, SegmentSize: 2048})
				checkRecords(t, replayAll(t, l), testEntries(1, 25))
				if count, _, err := r.Verify(); err != nil || count != 25 {
					t.Fatalf("Verify after reopen: %d, %v", count, err)
				}
			})
		}
	}
}

// TestFailedRecoveryRetried makes the reopen after a failed batch fail too
// (the directory vanishes); the next Append retries it.
func TestFailedRecoveryRetried(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "events")
	away := filepath.Join(root, "away")
	fail := false
	opts := testOpts()
	opts.FailHook = func(op string) error {
		if fail && op == OpWrite {
			fail = false
			if err := os.Rename(dir, away); err != nil {
				t.Error(err)
			}
			return errors.New("disk gone")
		}
		return nil
	}
	l := openLog(t, dir, opts)
	old := mustAppend(t, l, testEntries(1, 5))
	fail = true
	if _, err := l.Append(testEntries(6, 2)); err == nil || !strings.Contains(err.Error(), "could not be reopened") {
		t.Fatalf("got %v, want a failed batch and a failed reopen", err)
	}
	if _, err := l.Read(1); err == nil {
		t.Fatal("Read worked with the directory gone")
	}
	// The failed reopen recreated an empty dir; put the real one back.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(away, dir); err != nil {
		t.Fatal(err)
	}
	recs := mustAppend(t, l, testEntries(6, 2))
	if recs[0].Seq != 6 || recs[0].Prev != old[4].Hash || l.LastSeq() != 7 {
		t.Fatalf("after retry: seq %d, last %d", recs[0].Seq, l.LastSeq())
	}
	checkRecords(t, replayAll(t, l), testEntries(1, 7))
}

// TestWALKeepsFailedBatch documents the tidwall/wal trap the recovery
// exists for: after a failed fsync the wal has advanced past entries the
// caller was told failed.
func TestWALKeepsFailedBatch(t *testing.T) {
	dir := t.TempDir()
	w, err := wal.Open(dir, &wal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write(1, []byte("a"))
	var b wal.Batch
	b.Write(2, []byte("b"))
	if err := w.WriteBatch(&b); err != nil {
		t.Fatal(err)
	}
	// Had the fsync after that write failed, the wal would still say 2.
	if last, _ := w.LastIndex(); last != 2 {
		t.Fatalf("LastIndex %d", last)
	}
	if err := w.Write(2, []byte("again")); !errors.Is(err, wal.ErrOutOfOrder) {
		t.Fatalf("rewriting index 2: got %v, want ErrOutOfOrder", err)
	}
}

func TestCutAfterKeepsUnrelatedFiles(t *testing.T) {
	dir, _ := pristine(t, 20, testOpts())
	segs := segmentsOf(t, dir)
	target := segs[1].Index + 1
	o, _ := testOpts().withDefaults()
	if err := cutAfter(dir, target, false, o.Logger); err != nil {
		t.Fatal(err)
	}
	r, _ := OpenReader(dir)
	if count, _, err := r.Verify(); err != nil || count != target {
		t.Fatalf("after cutAfter(%d): %d records, %v", target, count, err)
	}
	if got := len(segmentsOf(t, dir)); got != 2 {
		t.Fatalf("%d segments left, want 2", got)
	}
	// Asking for more than is there is corruption, not a silent no-op.
	err := cutAfter(dir, target+100, false, o.Logger)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("cutAfter beyond the end: got %v", err)
	}
}
