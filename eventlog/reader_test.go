package eventlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// dirState returns every file name and content in dir, to check that a
// reader changed nothing.
func dirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		m[de.Name()] = string(readFile(t, filepath.Join(dir, de.Name())))
	}
	return m
}

func sameState(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestReaderMatchesLog(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, testOpts())
	for i := 0; i < 10; i++ {
		mustAppend(t, l, testEntries(i*7+1, 7))
	}
	want := replayAll(t, l)
	r, err := OpenReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r.Dir() != dir {
		t.Fatalf("Dir() = %q", r.Dir())
	}
	var got []Record
	if err := r.Scan(func(rec Record) error { got = append(got, rec); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("Reader saw %d records, Log %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Hash != want[i].Hash || got[i].Seq != want[i].Seq {
			t.Fatalf("record %d differs", i+1)
		}
	}
	count, last, err := r.Verify()
	if err != nil || count != l.LastSeq() || last != l.LastHash() {
		t.Fatalf("Verify = %d, %x, %v; want %d, %x", count, last[:4], err, l.LastSeq(), l.LastHash())
	}
	stop := errors.New("stop")
	if err := r.Scan(func(Record) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("callback error: got %v", err)
	}
}

func TestReaderIncompleteTail(t *testing.T) {
	const n = 12
	src, recs := pristine(t, n, testOpts())
	segs := segmentsOf(t, src)
	last := segs[len(segs)-1]
	offs, data := frameOffsets(t, last.Path)
	recStart := offs[len(offs)-1]
	dir := filepath.Join(t.TempDir(), "events")
	copyDir(t, src, dir)
	r, err := OpenReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	for cut := recStart; cut < len(data); cut++ {
		writeFile(t, filepath.Join(dir, last.Name), data[:cut])
		before := dirState(t, dir)
		count, h, err := r.Verify()
		if err != nil || count != n-1 || h != recs[n-2].Hash {
			t.Fatalf("cut at +%d: Verify = %d, %v; want %d records", cut-recStart, count, err, n-1)
		}
		if !sameState(before, dirState(t, dir)) {
			t.Fatal("Reader changed the directory")
		}
	}
	// A zero-filled tail is damage, not a record being written: the
	// Reader reports it (Open would cut it).
	writeFile(t, filepath.Join(dir, last.Name), append(append([]byte(nil), data...), make([]byte, 8)...))
	count, _, err := r.Verify()
	wantSegmentError(t, err, last.Name, n+1, ErrCorrupt)
	if count != n {
		t.Fatalf("Verify counted %d records before the damage, want %d", count, n)
	}
}

func TestReaderDirs(t *testing.T) {
	if _, err := OpenReader(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("OpenReader of a missing dir worked")
	}
	file := filepath.Join(t.TempDir(), "f")
	writeFile(t, file, nil)
	if _, err := OpenReader(file); err == nil {
		t.Fatal("OpenReader of a file worked")
	}
	r, err := OpenReader(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if count, last, err := r.Verify(); count != 0 || last != ([32]byte{}) || err != nil {
		t.Fatalf("empty dir: Verify = %d, %x, %v", count, last, err)
	}
}

func TestReaderIgnoresOtherFiles(t *testing.T) {
	dir, recs := pristine(t, 15, testOpts())
	for _, name := range []string{
		SegmentName(1) + ".broken", SegmentName(3) + ".START", SegmentName(4) + ".END",
		SegmentName(5) + ".START.TEMP", "0000000000000000000x", "notes.txt",
	} {
		writeFile(t, filepath.Join(dir, name), []byte("junk"))
	}
	r, _ := OpenReader(dir)
	if count, last, err := r.Verify(); err != nil || count != 15 || last != recs[14].Hash {
		t.Fatalf("Verify = %d, %v", count, err)
	}
}

// TestReaderBesideWriter runs Verify while a Log appends; every Verify
// must see a consistent prefix.
func TestReaderBesideWriter(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, &Options{NoSync: true, SegmentSize: 4096})
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 200; i++ {
			if _, err := l.Append(testEntries(i*3+1, 3)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	r, _ := OpenReader(dir)
	var prev uint64
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			running = false
		default:
		}
		count, _, err := r.Verify()
		if err != nil {
			t.Fatalf("Verify beside a writer: %v", err)
		}
		if count < prev {
			t.Fatalf("count went from %d to %d", prev, count)
		}
		prev = count
	}
	if count, _, err := r.Verify(); err != nil || count != 600 {
		t.Fatal(fmt.Sprint(count, err))
	}
}
