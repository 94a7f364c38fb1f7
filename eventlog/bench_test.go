package eventlog

import (
	"fmt"
	"testing"

	"github.com/tidwall/wal"
)

// Both benchmarks write batches of about 290-byte records with fsync on
// and the default segment size; one iteration is one batch (one write and
// one fsync). Compare entries/s between them for the cost of this package
// over bare tidwall/wal.

var benchBatchSizes = []int{1, 16, 64}

func BenchmarkAppendBatch(b *testing.B) {
	for _, size := range benchBatchSizes {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			l, err := Open(b.TempDir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			es := testEntries(1, size)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := l.Append(es); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

func BenchmarkBareWALWriteBatch(b *testing.B) {
	for _, size := range benchBatchSizes {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			w, err := wal.Open(b.TempDir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			// Payloads of the same size as the event records.
			payloads := make([][]byte, size)
			for i, e := range testEntries(1, size) {
				payloads[i] = EncodeRecord(&Record{Seq: uint64(i + 1), TimeMs: e.TimeMs, Actor: e.Actor, Type: e.Type, Data: e.Data})
			}
			var batch wal.Batch
			next := uint64(1)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				for _, p := range payloads {
					batch.Write(next, p)
					next++
				}
				if err := w.WriteBatch(&batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}
