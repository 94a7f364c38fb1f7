package eventlog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// testEntries returns n entries numbered from start; each carries about
// 200 bytes of data, so frame headers are two bytes long.
func testEntries(start, n int) []Entry {
	es := make([]Entry, n)
	for i := range es {
		k := start + i
		es[i] = Entry{
			TimeMs: 1_700_000_000_000 + int64(k),
			Actor:  fmt.Sprintf("alice/laptop/s%d", k%3),
			Type:   "user_registered",
			Data:   []byte(fmt.Sprintf(`{"n":%d,"pad":%q}`, k, strings.Repeat("x", 180))),
		}
	}
	return es
}

func testOpts() *Options { return &Options{NoSync: true, SegmentSize: 2048} }

func openLog(t testing.TB, dir string, opts *Options) *Log {
	t.Helper()
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func mustAppend(t testing.TB, l *Log, es []Entry) []Record {
	t.Helper()
	recs, err := l.Append(es)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return recs
}

// replayAll returns every record of l, verified.
func replayAll(t testing.TB, l *Log) []Record {
	t.Helper()
	var recs []Record
	if err := l.Replay(0, [32]byte{}, func(r Record) error {
		recs = append(recs, r)
		return nil
	}); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return recs
}

// checkRecords checks that recs are the records of entries es from seq 1.
func checkRecords(t testing.TB, recs []Record, es []Entry) {
	t.Helper()
	if len(recs) != len(es) {
		t.Fatalf("got %d records, want %d", len(recs), len(es))
	}
	var prev [32]byte
	for i, r := range recs {
		e := es[i]
		if r.Seq != uint64(i+1) || r.TimeMs != e.TimeMs || r.Actor != e.Actor || r.Type != e.Type ||
			!bytes.Equal(r.Data, e.Data) || r.Prev != prev || r.Version != FormatVersion {
			t.Fatalf("record %d: got %+v, want entry %+v with prev %x", i+1, r, e, prev[:4])
		}
		prev = r.Hash
	}
}

func segmentsOf(t testing.TB, dir string) []Segment {
	t.Helper()
	segs, err := ListSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	return segs
}

// frameOffsets returns the start offset of each frame in a segment file
// and the file's bytes.
func frameOffsets(t testing.TB, path string) ([]int, []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int
	for off := 0; off < len(data); {
		_, n, err := nextFrame(data[off:])
		if err != nil {
			t.Fatalf("%s offset %d: %v", path, off, err)
		}
		offs = append(offs, off)
		off += n
	}
	return offs, data
}

func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o750); err != nil {
		t.Fatal(err)
	}
	des, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(src, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, de.Name()), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// brokenFiles returns the .broken files in dir with their contents.
func brokenFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		if strings.Contains(de.Name(), ".broken") {
			m[de.Name()] = readFile(t, filepath.Join(dir, de.Name()))
		}
	}
	return m
}

// wantSegmentError checks that err wraps every sentinel in want and is a
// *SegmentError naming segment and seq.
func wantSegmentError(t testing.TB, err error, segment string, seq uint64, want ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want %v at segment %s seq %d", want, segment, seq)
	}
	for _, w := range want {
		if !errors.Is(err, w) {
			t.Errorf("error %q does not wrap %q", err, w)
		}
	}
	var se *SegmentError
	if !errors.As(err, &se) {
		t.Fatalf("error %q is not a *SegmentError", err)
	}
	if se.Segment != segment || se.Seq != seq {
		t.Errorf("error names segment %s seq %d, want segment %s seq %d (%v)", se.Segment, se.Seq, segment, seq, err)
	}
	if !strings.Contains(err.Error(), segment) || !strings.Contains(err.Error(), fmt.Sprintf("seq %d", seq)) {
		t.Errorf("message %q does not name segment %s and seq %d", err, segment, seq)
	}
}

// logBuffer is a slog logger writing text into a buffer, safe for
// concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Writer(b), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
