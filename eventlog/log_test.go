package eventlog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestAppendReplayReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "events")
	l := openLog(t, dir, testOpts())
	if l.LastSeq() != 0 || l.LastHash() != ([32]byte{}) {
		t.Fatalf("new log: got seq %d hash %x, want 0 and zero", l.LastSeq(), l.LastHash())
	}
	es := testEntries(1, 100)
	var recs []Record
	for i, n := 0, 1; i < len(es); i, n = i+n, n%7+1 {
		end := min(i+n, len(es))
		got := mustAppend(t, l, es[i:end])
		if got[0].Seq != uint64(i+1) {
			t.Fatalf("batch at %d starts with seq %d", i, got[0].Seq)
		}
		recs = append(recs, got...)
	}
	checkRecords(t, recs, es)
	if segs := segmentsOf(t, dir); len(segs) < 5 {
		t.Fatalf("got %d segments, want several", len(segs))
	}
	if l.LastSeq() != 100 || l.LastHash() != recs[99].Hash {
		t.Fatalf("got last seq %d, want 100 with the last record's hash", l.LastSeq())
	}
	checkRecords(t, replayAll(t, l), es)
	for _, seq := range []uint64{1, 2, 17, 50, 99, 100} {
		r, err := l.Read(seq)
		if err != nil || r.Hash != recs[seq-1].Hash {
			t.Fatalf("Read(%d) = %+v, %v", seq, r, err)
		}
	}
	for _, seq := range []uint64{0, 101} {
		if _, err := l.Read(seq); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Read(%d): got %v, want ErrNotFound", seq, err)
		}
	}
	// Replay from a snapshot point.
	var from []Record
	if err := l.Replay(40, recs[39].Hash, func(r Record) error { from = append(from, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(from) != 60 || from[0].Seq != 41 {
		t.Fatalf("Replay(40) gave %d records starting at %d", len(from), from[0].Seq)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openLog(t, dir, testOpts())
	if l.LastSeq() != 100 || l.LastHash() != recs[99].Hash {
		t.Fatalf("reopened: got seq %d hash %x", l.LastSeq(), l.LastHash())
	}
	more := mustAppend(t, l, testEntries(101, 5))
	if more[0].Seq != 101 || more[0].Prev != recs[99].Hash {
		t.Fatalf("append after reopen: got seq %d prev %x", more[0].Seq, more[0].Prev[:4])
	}
	checkRecords(t, replayAll(t, l), testEntries(1, 105))
	if l.Dir() != dir {
		t.Fatalf("Dir() = %q, want %q", l.Dir(), dir)
	}
}

func TestReplaySnapshotLink(t *testing.T) {
	l := openLog(t, t.TempDir(), testOpts())
	recs := mustAppend(t, l, testEntries(1, 10))
	nop := func(Record) error { return nil }
	cases := []struct {
		name  string
		after uint64
		prev  [32]byte
		want  error
	}{
		{"zero ok", 0, [32]byte{}, nil},
		{"zero with hash", 0, recs[0].Hash, ErrChain},
		{"middle ok", 4, recs[3].Hash, nil},
		{"middle wrong", 4, recs[4].Hash, ErrChain},
		{"end ok", 10, recs[9].Hash, nil},
		{"end wrong", 10, recs[8].Hash, ErrChain},
		{"beyond end", 11, recs[9].Hash, ErrChain},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := l.Replay(c.after, c.prev, nop)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	stop := errors.New("stop")
	if err := l.Replay(0, [32]byte{}, func(r Record) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("callback error: got %v, want it wrapped", err)
	}
}

func TestAppendTooLarge(t *testing.T) {
	l := openLog(t, t.TempDir(), testOpts())
	mustAppend(t, l, testEntries(1, 1))
	_, err := l.Append([]Entry{{Type: "ok"}, {Actor: strings.Repeat("a", MaxFieldLen+1)}})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	if l.LastSeq() != 1 {
		t.Fatalf("LastSeq = %d after a refused batch, want 1", l.LastSeq())
	}
	if recs, err := l.Append(nil); recs != nil || err != nil {
		t.Fatalf("empty Append = %v, %v", recs, err)
	}
}

func TestClosed(t *testing.T) {
	l := openLog(t, t.TempDir(), testOpts())
	mustAppend(t, l, testEntries(1, 2))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(testEntries(3, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append: got %v", err)
	}
	if _, err := l.Read(1); !errors.Is(err, ErrClosed) {
		t.Errorf("Read: got %v", err)
	}
	if err := l.Replay(0, [32]byte{}, func(Record) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Replay: got %v", err)
	}
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: got %v", err)
	}
	if l.LastSeq() != 2 {
		t.Errorf("LastSeq after Close = %d", l.LastSeq())
	}
}

func TestOpenOptions(t *testing.T) {
	if _, err := Open(t.TempDir(), &Options{SegmentSize: -1}); err == nil {
		t.Fatal("negative segment size accepted")
	}
	file := filepath.Join(t.TempDir(), "f")
	writeFile(t, file, nil)
	if _, err := Open(file, nil); err == nil {
		t.Fatal("Open of a file accepted")
	}
	// Defaults, with fsync on.
	l := openLog(t, filepath.Join(t.TempDir(), "a", "b"), nil)
	mustAppend(t, l, testEntries(1, 3))
	if l.s.opts.SegmentSize != DefaultSegmentSize {
		t.Fatalf("segment size %d", l.s.opts.SegmentSize)
	}
}

// TestDirSyncOnRoll checks that the store's mirror of tidwall/wal's
// segment rule predicts every new segment file, and nothing else.
func TestDirSyncOnRoll(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, &Options{NoSync: true, SegmentSize: 1000})
	n := 1
	for i := 0; i < 60; i++ {
		before, syncs := len(segmentsOf(t, dir)), l.s.dirSyncs
		mustAppend(t, l, testEntries(n, i%5+1))
		n += i%5 + 1
		rolled := len(segmentsOf(t, dir)) > before
		if synced := l.s.dirSyncs > syncs; rolled != synced {
			t.Fatalf("batch %d: new segment %v, directory synced %v", i, rolled, synced)
		}
	}
	// A reopen starts from the tail segment's real size.
	l.Close()
	l = openLog(t, dir, &Options{NoSync: true, SegmentSize: 1000})
	for i := 0; i < 20; i++ {
		before, syncs := len(segmentsOf(t, dir)), l.s.dirSyncs
		mustAppend(t, l, testEntries(n, 2))
		n += 2
		if rolled, synced := len(segmentsOf(t, dir)) > before, l.s.dirSyncs > syncs; rolled != synced {
			t.Fatalf("after reopen, batch %d: new segment %v, directory synced %v", i, rolled, synced)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	l := openLog(t, t.TempDir(), testOpts())
	mustAppend(t, l, testEntries(1, 10))
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 40; i++ {
			if _, err := l.Append(testEntries(11+i*2, 2)); err != nil {
				errc <- err
				return
			}
		}
	}()
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				last := l.LastSeq()
				if _, err := l.Read(last/2 + 1); err != nil {
					errc <- err
					return
				}
				var n uint64
				err := l.Replay(0, [32]byte{}, func(r Record) error { n++; l.LastSeq(); return nil })
				if err != nil || n < last {
					errc <- errors.Join(err, errors.New("replay short"))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	checkRecords(t, replayAll(t, l), testEntries(1, 90))
}

func TestFirstSegmentMustBeOne(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, &Options{NoSync: true, SegmentSize: 600})
	mustAppend(t, l, testEntries(1, 20))
	l.Close()
	segs := segmentsOf(t, dir)
	if err := os.Remove(segs[0].Path); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, testOpts()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open without the first segment: got %v, want ErrCorrupt", err)
	}
	r, _ := OpenReader(dir)
	if _, _, err := r.Verify(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify without the first segment: got %v, want ErrCorrupt", err)
	}
}

// TestReopenEmptyTailSegment reopens a log whose last segment file is
// empty (a batch ended exactly at a roll): the last hash comes from the
// segment before.
func TestReopenEmptyTailSegment(t *testing.T) {
	dir := t.TempDir()
	opts := &Options{NoSync: true, SegmentSize: 1000}
	l := openLog(t, dir, opts)
	var recs []Record
	for i := 1; ; i++ {
		recs = append(recs, mustAppend(t, l, testEntries(i, 1))...)
		segs := segmentsOf(t, dir)
		if fi, _ := os.Stat(segs[len(segs)-1].Path); len(segs) > 1 && fi.Size() == 0 {
			break
		}
		if i > 100 {
			t.Fatal("no empty tail segment")
		}
	}
	l.Close()
	l = openLog(t, dir, opts)
	n := len(recs)
	if l.LastSeq() != uint64(n) || l.LastHash() != recs[n-1].Hash {
		t.Fatalf("got seq %d, want %d with its hash", l.LastSeq(), n)
	}
	mustAppend(t, l, testEntries(n+1, 1))
	checkRecords(t, replayAll(t, l), testEntries(1, n+1))
}
