package eventlog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func historyData(i int) []byte {
	return []byte(fmt.Sprintf("message %d %s", i, strings.Repeat("m", 150)))
}

func plainDatas(start, n int) [][]byte {
	ds := make([][]byte, n)
	for i := range ds {
		ds[i] = historyData(start + i)
	}
	return ds
}

func openPlain(t testing.TB, dir string, opts *Options) *Plain {
	t.Helper()
	p, err := OpenPlain(dir, opts)
	if err != nil {
		t.Fatalf("OpenPlain: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// checkPlain checks that p holds entries first..last with their data.
func checkPlain(t testing.TB, p *Plain, first, last uint64) {
	t.Helper()
	if p.FirstIndex() != first || p.LastIndex() != last {
		t.Fatalf("got range %d-%d, want %d-%d", p.FirstIndex(), p.LastIndex(), first, last)
	}
	want := first
	err := p.Scan(0, func(i uint64, d []byte) error {
		if i != want || !bytes.Equal(d, historyData(int(i))) {
			return fmt.Errorf("entry %d (want %d): %q", i, want, d)
		}
		want++
		return nil
	})
	if err != nil || want != last+1 {
		t.Fatalf("Scan: %v, stopped before %d", err, want)
	}
}

func TestPlain(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "history")
	p := openPlain(t, dir, &Options{NoSync: true, SegmentSize: 1024})
	checkPlain(t, p, 1, 0)
	for i := 1; i <= 50; i += 5 {
		first, err := p.Append(plainDatas(i, 5))
		if err != nil || first != uint64(i) {
			t.Fatalf("Append = %d, %v; want %d", first, err, i)
		}
	}
	if next, err := p.Append(nil); next != 51 || err != nil {
		t.Fatalf("empty Append = %d, %v", next, err)
	}
	checkPlain(t, p, 1, 50)
	if d, err := p.Read(17); err != nil || !bytes.Equal(d, historyData(17)) {
		t.Fatalf("Read(17) = %q, %v", d, err)
	}
	for _, i := range []uint64{0, 51} {
		if _, err := p.Read(i); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Read(%d): got %v", i, err)
		}
	}
	if err := p.TruncateFront(23); err != nil {
		t.Fatal(err)
	}
	checkPlain(t, p, 23, 50)
	if _, err := p.Read(22); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Read of a truncated entry: %v", err)
	}
	if err := p.TruncateFront(10); err != nil {
		t.Fatalf("TruncateFront before the first index: %v", err)
	}
	if err := p.TruncateFront(52); !errors.Is(err, ErrNotFound) {
		t.Fatalf("TruncateFront past the end: %v", err)
	}
	// Scan from the middle, and an error from the callback.
	var seen []uint64
	p.Scan(48, func(i uint64, _ []byte) error { seen = append(seen, i); return nil })
	if fmt.Sprint(seen) != "[48 49 50]" {
		t.Fatalf("Scan(48) saw %v", seen)
	}
	stop := errors.New("stop")
	if err := p.Scan(0, func(uint64, []byte) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("Scan callback error: %v", err)
	}
	p.Close()

	p = openPlain(t, dir, &Options{NoSync: true, SegmentSize: 1024})
	checkPlain(t, p, 23, 50)
	if first, err := p.Append(plainDatas(51, 3)); err != nil || first != 51 {
		t.Fatalf("Append after reopen = %d, %v", first, err)
	}
	// Empty it, reopen, and carry on numbering.
	if err := p.TruncateFront(54); err != nil {
		t.Fatal(err)
	}
	checkPlain(t, p, 54, 53)
	p.Close()
	p = openPlain(t, dir, nil)
	checkPlain(t, p, 54, 53)
	if first, err := p.Append(plainDatas(54, 2)); err != nil || first != 54 {
		t.Fatalf("Append to an emptied log = %d, %v", first, err)
	}
	checkPlain(t, p, 54, 55)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Append(plainDatas(1, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
}

func TestPlainTornTail(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	p := openPlain(t, src, &Options{NoSync: true, SegmentSize: 1024})
	if _, err := p.Append(plainDatas(1, 9)); err != nil {
		t.Fatal(err)
	}
	p.Close()
	segs := segmentsOf(t, src)
	last := segs[len(segs)-1]
	offs, data := frameOffsets(t, last.Path)
	if len(offs) < 2 {
		t.Fatalf("last segment holds %d entries", len(offs))
	}
	recStart := offs[len(offs)-1]
	for cut := recStart; cut < len(data); cut++ {
		dir := filepath.Join(t.TempDir(), fmt.Sprint(cut))
		copyDir(t, src, dir)
		writeFile(t, filepath.Join(dir, last.Name), data[:cut])
		p := openPlain(t, dir, &Options{NoSync: true, SegmentSize: 1024})
		if p.LastIndex() != 8 {
			t.Fatalf("cut at +%d: LastIndex %d, want 8", cut-recStart, p.LastIndex())
		}
		if got := len(brokenFiles(t, dir)); (cut > recStart) != (got == 1) {
			t.Fatalf("cut at +%d: %d .broken files", cut-recStart, got)
		}
		if first, err := p.Append(plainDatas(9, 1)); err != nil || first != 9 {
			t.Fatalf("Append after repair = %d, %v", first, err)
		}
		checkPlain(t, p, 1, 9)
		p.Close()
	}
	t.Run("zero-filled tail", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "z")
		copyDir(t, src, dir)
		writeFile(t, filepath.Join(dir, last.Name), append(append([]byte(nil), data...), make([]byte, 64)...))
		p := openPlain(t, dir, nil)
		checkPlain(t, p, 1, 9)
	})
	t.Run("bad crc in the middle", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "m")
		copyDir(t, src, dir)
		b := append([]byte(nil), data...)
		b[offs[0]+10] ^= 1
		writeFile(t, filepath.Join(dir, last.Name), b)
		_, err := OpenPlain(dir, nil)
		wantSegmentError(t, err, last.Name, last.Index, ErrCorrupt, ErrChecksum)
	})
	t.Run("bad crc in the middle, KeepDamaged", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "k")
		copyDir(t, src, dir)
		if len(offs) < 2 {
			t.Fatalf("last segment holds %d entries", len(offs))
		}
		b := append([]byte(nil), data...)
		b[offs[0]+10] ^= 1
		writeFile(t, filepath.Join(dir, last.Name), b)
		var logs logBuffer
		p := openPlain(t, dir, &Options{NoSync: true, SegmentSize: 1024, KeepDamaged: true, Logger: logs.logger()})
		if p.LastIndex() != 9 {
			t.Fatalf("LastIndex %d, want 9: nothing may be cut", p.LastIndex())
		}
		if !bytes.Equal(readFile(t, filepath.Join(dir, last.Name)), b) || len(brokenFiles(t, dir)) != 0 {
			t.Fatal("the segment was changed")
		}
		bad := last.Index
		if !strings.Contains(logs.String(), fmt.Sprintf("seq=%d", bad)) {
			t.Fatalf("no warning names seq %d:\n%s", bad, logs.String())
		}
		_, err := p.Read(bad)
		wantSegmentError(t, err, last.Name, bad, ErrChecksum)
		for _, i := range []uint64{1, bad - 1, bad + 1, 9} {
			if d, err := p.Read(i); err != nil || !bytes.Equal(d, historyData(int(i))) {
				t.Fatalf("Read(%d) = %q, %v", i, d, err)
			}
		}
		if first, err := p.Append(plainDatas(10, 1)); err != nil || first != 10 {
			t.Fatalf("Append = %d, %v", first, err)
		}
		var damaged []uint64
		rd, err := OpenPlainReader(dir)
		if err != nil {
			t.Fatal(err)
		}
		err = rd.Scan(&ScanOptions{OnDamage: func(se *SegmentError) error {
			damaged = append(damaged, se.Seq)
			return nil
		}}, func(uint64, []byte) error { return nil })
		if err != nil || len(damaged) != 1 || damaged[0] != bad {
			t.Fatalf("PlainReader scan: %v, damaged %v, want [%d]", err, damaged, bad)
		}
		// A damaged last entry is still a torn tail, cut as before.
		p.Close()
		dir2 := filepath.Join(t.TempDir(), "k2")
		copyDir(t, src, dir2)
		b = append([]byte(nil), data...)
		b[offs[len(offs)-1]+10] ^= 1
		writeFile(t, filepath.Join(dir2, last.Name), b)
		p2 := openPlain(t, dir2, &Options{NoSync: true, KeepDamaged: true})
		if p2.LastIndex() != 8 || len(brokenFiles(t, dir2)) != 1 {
			t.Fatalf("LastIndex %d, want the torn last entry cut", p2.LastIndex())
		}
	})
	t.Run("bad crc in an earlier segment", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "e")
		copyDir(t, src, dir)
		b := readFile(t, filepath.Join(dir, segs[0].Name))
		b[20] ^= 1
		writeFile(t, filepath.Join(dir, segs[0].Name), b)
		p := openPlain(t, dir, nil)
		_, err := p.Read(1)
		wantSegmentError(t, err, segs[0].Name, 1, ErrChecksum)
		if err := p.Scan(0, func(uint64, []byte) error { return nil }); !errors.Is(err, ErrChecksum) {
			t.Fatalf("Scan: %v", err)
		}
	})
}

func TestPlainFailedBatch(t *testing.T) {
	for _, op := range []string{OpWrite, OpSync, OpSyncDir} {
		t.Run(op, func(t *testing.T) {
			dir := t.TempDir()
			hook, arm, _ := failOnce(op)
			p := openPlain(t, dir, &Options{NoSync: true, SegmentSize: 1024, FailHook: hook})
			if _, err := p.Append(plainDatas(1, 4)); err != nil {
				t.Fatal(err)
			}
			arm()
			if _, err := p.Append(plainDatas(5, 10)); err == nil {
				t.Fatal("failing batch succeeded")
			}
			if p.LastIndex() != 4 {
				t.Fatalf("LastIndex %d after a failed batch", p.LastIndex())
			}
			if first, err := p.Append(plainDatas(5, 10)); err != nil || first != 5 {
				t.Fatalf("Append after failure = %d, %v", first, err)
			}
			p.Close()
			p = openPlain(t, dir, nil)
			checkPlain(t, p, 1, 14)
		})
	}
	t.Run("truncate", func(t *testing.T) {
		dir := t.TempDir()
		hook, arm, _ := failOnce(OpTruncate)
		p := openPlain(t, dir, &Options{NoSync: true, SegmentSize: 1024, FailHook: hook})
		p.Append(plainDatas(1, 20))
		arm()
		if err := p.TruncateFront(5); err == nil {
			t.Fatal("failing truncate succeeded")
		}
		checkPlain(t, p, 1, 20)
		if err := p.TruncateFront(5); err != nil {
			t.Fatal(err)
		}
		checkPlain(t, p, 5, 20)
	})
}

// TestPlainInterruptedTruncation leaves the .START file of a front
// truncation that crashed before deleting the old segments; OpenPlain
// lets the wal finish it.
func TestPlainInterruptedTruncation(t *testing.T) {
	dir := t.TempDir()
	p := openPlain(t, dir, &Options{NoSync: true, SegmentSize: 1024})
	p.Append(plainDatas(1, 30))
	p.Close()
	segs := segmentsOf(t, dir)
	seg := segs[1]
	offs, data := frameOffsets(t, seg.Path)
	start := seg.Index + 2
	writeFile(t, filepath.Join(dir, SegmentName(start)+".START"), data[offs[2]:])
	// And a torn tail on top.
	lastPath := segs[len(segs)-1].Path
	b := readFile(t, lastPath)
	writeFile(t, lastPath, b[:len(b)-3])

	p = openPlain(t, dir, nil)
	checkPlain(t, p, start, 29)
	if des, _ := os.ReadDir(dir); len(des) != len(segs)-1+1 { // one segment gone, one .broken
		t.Fatalf("%d files left", len(des))
	}
}
