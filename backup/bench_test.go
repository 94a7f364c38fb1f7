package backup

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

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
		if _, err := Create(context.Background(), src, file, nil); err != nil {
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
	if _, err := Create(context.Background(), src, file, nil); err != nil {
		b.Fatal(err)
	}
	parent := b.TempDir()
	i := 0
	for b.Loop() {
		i++
		dst := filepath.Join(parent, "r"+string(rune('a'+i%26)))
		os.RemoveAll(dst)
		if _, err := Restore(context.Background(), file, dst, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// bench1M builds the large case: 1 000 000 events and a week of
// history (300 000 messages, about one every two seconds).
func bench1M(b *testing.B) string {
	b.Helper()
	return newDataDir(b, dirSpec{events: 1_000_000, snapshots: []uint64{980_000, 990_000, 1_000_000},
		history: 300_000, segment: eventlog.DefaultSegmentSize})
}

// BenchmarkBackupRestore1M measures one backup and one restore of the
// large case. Run with -bench 1M -benchtime=1x.
func BenchmarkBackupRestore1M(b *testing.B) {
	src := bench1M(b)
	out := b.TempDir()
	for b.Loop() {
		file := filepath.Join(out, "b.tar.zst")
		os.Remove(file)
		start := time.Now()
		if _, err := Create(context.Background(), src, file, nil); err != nil {
			b.Fatal(err)
		}
		created := time.Since(start)
		fi, _ := os.Stat(file)
		dst := filepath.Join(out, "restored")
		os.RemoveAll(dst)
		start = time.Now()
		if _, err := Restore(context.Background(), file, dst, nil); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(created.Seconds(), "backup-s")
		b.ReportMetric(time.Since(start).Seconds(), "restore-s")
		b.ReportMetric(float64(fi.Size()), "archive-bytes")
	}
	b.ReportMetric(float64(dirSize(b, src)), "dir-bytes")
}
