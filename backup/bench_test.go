package backup

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/conclave/conclave/eventlog"
)

// bench200k builds a data dir of 200 000 events (default segment size, a
// snapshot every 10 000 events, the newest 3 kept) and 50 000 history
// messages.
func bench200k(b *testing.B) string {
	b.Helper()
	var snaps []uint64
	for s := uint64(10_000); s <= 200_000; s += 10_000 {
		snaps = append(snaps, s)
	}
	return newDataDir(b, dirSpec{events: 200_000, snapshots: snaps, history: 50_000, segment: eventlog.DefaultSegmentSize})
}

func dirSize(b *testing.B, dir string) int64 {
	var n int64
	for _, data := range tree(b, dir) {
		n += int64(len(data))
	}
	return n
}

// BenchmarkCreate200k measures Create (scan, copy, compress, verify).
// Run with -benchtime=Nx: each iteration writes a new file.
func BenchmarkCreate200k(b *testing.B) {
	src := bench200k(b)
	out := b.TempDir()
	var size int64
	i := 0
	for b.Loop() {
		i++
		file := filepath.Join(out, "b"+string(rune('a'+i%26))+".tar.zst")
		os.Remove(file)
		if _, err := Create(src, file, nil); err != nil {
			b.Fatal(err)
		}
		fi, _ := os.Stat(file)
		size = fi.Size()
	}
	b.ReportMetric(float64(dirSize(b, src)), "dir-bytes")
	b.ReportMetric(float64(size), "archive-bytes")
}

// BenchmarkRestore200k measures Restore (unpack, verify, replay after the
// snapshot, re-verify with eventlog).
func BenchmarkRestore200k(b *testing.B) {
	src := bench200k(b)
	file := filepath.Join(b.TempDir(), "b.tar.zst")
	if _, err := Create(src, file, nil); err != nil {
		b.Fatal(err)
	}
	parent := b.TempDir()
	i := 0
	for b.Loop() {
		i++
		dst := filepath.Join(parent, "r"+string(rune('a'+i%26)))
		os.RemoveAll(dst)
		if _, err := Restore(file, dst, nil); err != nil {
			b.Fatal(err)
		}
	}
}
