package eventlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func testSnapshot(seq uint64, schema uint32) Snapshot {
	return Snapshot{
		Schema: schema,
		Seq:    seq,
		Hash:   sha256.Sum256([]byte(fmt.Sprint(seq))),
		Data:   []byte(strings.Repeat(fmt.Sprintf(`{"state at":%d}`, seq), 1000)),
	}
}

func checkSnapshot(t *testing.T, got *Snapshot, want Snapshot) {
	t.Helper()
	if got == nil {
		t.Fatalf("got no snapshot, want seq %d", want.Seq)
	}
	if got.Seq != want.Seq || got.Schema != want.Schema || got.Hash != want.Hash || !bytes.Equal(got.Data, want.Data) {
		t.Fatalf("got snapshot seq %d schema %d, want seq %d schema %d (or data differs)", got.Seq, got.Schema, want.Seq, want.Schema)
	}
	if filepath.Base(got.Path) != snapshotName(want.Seq) {
		t.Fatalf("Path = %s", got.Path)
	}
}

func TestSnapshotsKeep(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "snapshots")
	for seq := uint64(10); seq <= 50; seq += 10 {
		if err := WriteSnapshot(dir, testSnapshot(seq, 1), 3); err != nil {
			t.Fatal(err)
		}
	}
	paths, err := ListSnapshots(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range paths {
		names = append(names, filepath.Base(p))
	}
	if want := []string{snapshotName(30), snapshotName(40), snapshotName(50)}; fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("kept %v, want %v", names, want)
	}
	s, err := LoadNewestSnapshot(dir, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, s, testSnapshot(50, 1))
	// Compressed, really.
	if fi, _ := os.Stat(s.Path); fi.Size() > int64(len(s.Data))/10 {
		t.Fatalf("snapshot file is %d bytes for %d of data", fi.Size(), len(s.Data))
	}
}

func TestSnapshotFallback(t *testing.T) {
	newestBytes := func(t *testing.T) (string, []byte) {
		dir := t.TempDir()
		for seq := uint64(1); seq <= 3; seq++ {
			if err := WriteSnapshot(dir, testSnapshot(seq, 7), 3); err != nil {
				t.Fatal(err)
			}
		}
		return dir, readFile(t, filepath.Join(dir, snapshotName(3)))
	}
	// rawSnapshot builds a zstd stream with a given inner content.
	rawSnapshot := func(inner []byte) []byte {
		var buf bytes.Buffer
		enc, _ := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
		enc.Write(inner)
		enc.Close()
		return buf.Bytes()
	}
	header := func(schema uint32, seq, n uint64) []byte {
		h := []byte(snapMagic)
		h = binary.BigEndian.AppendUint32(h, schema)
		h = binary.BigEndian.AppendUint64(h, seq)
		h = append(h, make([]byte, 32)...)
		return binary.BigEndian.AppendUint64(h, n)
	}
	cases := []struct {
		name   string
		damage func([]byte) []byte
		reason string
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }, "unexpected EOF"},
		{"empty", func([]byte) []byte { return nil }, "header"},
		{"flipped byte", func(b []byte) []byte { b[len(b)/2] ^= 0x55; return b }, ""},
		{"not zstd", func([]byte) []byte { return []byte("hello, world, this is not zstd at all") }, ""},
		{"bad payload crc", func([]byte) []byte {
			return rawSnapshot(append(append(header(7, 3, 5), "hello"...), 0, 0, 0, 0))
		}, "checksum mismatch"},
		{"bad magic", func([]byte) []byte {
			h := header(7, 3, 0)
			h[0] = 'X'
			return rawSnapshot(append(h, 0, 0, 0, 0))
		}, "magic"},
		{"seq differs from name", func([]byte) []byte {
			return rawSnapshot(append(header(7, 99, 0), 0, 0, 0, 0))
		}, "file name"},
		{"huge length", func([]byte) []byte {
			return rawSnapshot(append(header(7, 3, 1<<62), 1, 2, 3))
		}, "exceeds"},
		{"trailing data", func([]byte) []byte {
			return rawSnapshot(append(header(7, 3, 0), 0, 0, 0, 0, 'x'))
		}, "after the payload"},
		{"foreign schema", func([]byte) []byte {
			return rawSnapshot(append(header(8, 3, 0), 0, 0, 0, 0))
		}, "schema 8, want 7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, b := newestBytes(t)
			path := filepath.Join(dir, snapshotName(3))
			writeFile(t, path, c.damage(b))
			var logs logBuffer
			s, err := LoadNewestSnapshot(dir, 7, logs.logger())
			if err != nil {
				t.Fatal(err)
			}
			checkSnapshot(t, s, testSnapshot(2, 7))
			out := logs.String()
			if !strings.Contains(out, "snapshot skipped") || !strings.Contains(out, snapshotName(3)) || !strings.Contains(out, c.reason) {
				t.Fatalf("warning does not name the file and %q: %s", c.reason, out)
			}
		})
	}
}

func TestSnapshotSchemas(t *testing.T) {
	dir := t.TempDir()
	WriteSnapshot(dir, testSnapshot(1, 1), 3)
	WriteSnapshot(dir, testSnapshot(2, 2), 3)
	s, _ := LoadNewestSnapshot(dir, 1, nil)
	checkSnapshot(t, s, testSnapshot(1, 1))
	s, _ = LoadNewestSnapshot(dir, 2, nil)
	checkSnapshot(t, s, testSnapshot(2, 2))
	if s, err := LoadNewestSnapshot(dir, 3, nil); s != nil || err != nil {
		t.Fatalf("no snapshot of schema 3: got %v, %v", s, err)
	}
	if s, err := LoadNewestSnapshot(filepath.Join(dir, "missing"), 1, nil); s != nil || err != nil {
		t.Fatalf("missing dir: got %v, %v", s, err)
	}
}

func TestSnapshotEdges(t *testing.T) {
	dir := t.TempDir()
	// Leftover temp file of a crashed write, and unrelated files.
	writeFile(t, filepath.Join(dir, snapTemp+"123"), []byte("partial"))
	writeFile(t, filepath.Join(dir, ".snap-00000000000000000001.zst.123.tmp"), []byte("partial"))
	writeFile(t, filepath.Join(dir, "snap-1.zst"), []byte("bad name"))
	writeFile(t, filepath.Join(dir, "README"), nil)
	empty := Snapshot{Schema: 1}
	if err := WriteSnapshot(dir, empty, 0); err != nil {
		t.Fatal(err)
	}
	for _, tmp := range []string{snapTemp + "123", ".snap-00000000000000000001.zst.123.tmp"} {
		if _, err := os.Stat(filepath.Join(dir, tmp)); !os.IsNotExist(err) {
			t.Fatalf("stale temp file %s not removed", tmp)
		}
	}
	paths, _ := ListSnapshots(dir)
	if len(paths) != 1 {
		t.Fatalf("ListSnapshots = %v", paths)
	}
	s, err := LoadNewestSnapshot(dir, 1, nil)
	if err != nil || s == nil || s.Seq != 0 || len(s.Data) != 0 {
		t.Fatalf("empty snapshot: %+v, %v", s, err)
	}
	// keep 0 counts as 1; rewriting the same seq replaces it.
	WriteSnapshot(dir, testSnapshot(5, 1), 0)
	WriteSnapshot(dir, testSnapshot(5, 1), 0)
	if paths, _ := ListSnapshots(dir); len(paths) != 1 || filepath.Base(paths[0]) != snapshotName(5) {
		t.Fatalf("ListSnapshots = %v", paths)
	}
}
