package eventlog

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// fuzzSnapshotFile writes b as the only snapshot file of a fresh dir (as
// snapshot seq 7) and loads it. Whatever the bytes, LoadNewestSnapshot must
// not panic or fail: a bad file is skipped. A file it accepts must say seq
// 7 and survive a write and a load unchanged.
func fuzzSnapshotFile(t *testing.T, b []byte) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "snap-00000000000000000007.zst"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := LoadNewestSnapshot(dir, 1, nil)
	if err != nil {
		t.Fatalf("LoadNewestSnapshot returned an error instead of skipping the file: %v", err)
	}
	if s == nil {
		return
	}
	if s.Seq != 7 || s.Schema != 1 {
		t.Fatalf("accepted a snapshot of seq %d, schema %d from snap-…7", s.Seq, s.Schema)
	}
	again := t.TempDir()
	if err := WriteSnapshot(again, *s, 1); err != nil {
		t.Fatalf("an accepted snapshot does not write back: %v", err)
	}
	s2, err := LoadNewestSnapshot(again, 1, nil)
	if err != nil || s2 == nil || s2.Seq != s.Seq || s2.Hash != s.Hash || !bytes.Equal(s2.Data, s.Data) {
		t.Fatalf("round trip: %+v, %v", s2, err)
	}
}

// snapshotStream is the uncompressed content of a snapshot file.
func snapshotStream(schema uint32, seq uint64, hash [32]byte, payload []byte) []byte {
	b := []byte(snapMagic)
	b = binary.BigEndian.AppendUint32(b, schema)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = append(b, hash[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(len(payload)))
	b = append(b, payload...)
	return binary.BigEndian.AppendUint32(b, crc32c(payload))
}

var (
	fuzzEncOnce sync.Once
	fuzzEnc     *zstd.Encoder
)

func compress(b []byte) []byte {
	fuzzEncOnce.Do(func() { fuzzEnc, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1)) })
	return fuzzEnc.EncodeAll(b, nil)
}

// FuzzLoadSnapshotFile feeds LoadNewestSnapshot arbitrary file bytes: the
// zstd framing itself is under attack.
func FuzzLoadSnapshotFile(f *testing.F) {
	good := compress(snapshotStream(1, 7, [32]byte{1, 2, 3}, []byte("state")))
	f.Add(good)
	f.Add([]byte{})
	f.Add(good[:len(good)/2])
	f.Add(append(bytes.Clone(good), 0))
	f.Add(compress(snapshotStream(2, 7, [32]byte{}, nil)))
	f.Add([]byte("CNSNAP1\nnot compressed"))
	f.Fuzz(fuzzSnapshotFile)
}

// FuzzLoadSnapshotStream feeds it well-compressed arbitrary content: the
// header, length and checksum checks are under attack.
func FuzzLoadSnapshotStream(f *testing.F) {
	f.Add(snapshotStream(1, 7, [32]byte{9}, []byte("state")))
	f.Add(snapshotStream(1, 7, [32]byte{}, nil))
	f.Add(snapshotStream(1, 8, [32]byte{}, []byte("wrong seq")))
	over := snapshotStream(1, 7, [32]byte{}, nil)
	binary.BigEndian.PutUint64(over[len(snapMagic)+44:], MaxSnapshotSize+1)
	f.Add(over)
	short := snapshotStream(1, 7, [32]byte{}, []byte("payload"))
	binary.BigEndian.PutUint64(short[len(snapMagic)+44:], 1<<20)
	f.Add(short)
	f.Add(append(snapshotStream(1, 7, [32]byte{}, []byte("x")), "trailing"...))
	f.Add([]byte(snapMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzSnapshotFile(t, compress(b))
	})
}
