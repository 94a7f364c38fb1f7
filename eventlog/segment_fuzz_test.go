package eventlog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// sentinel reports whether err wraps one of the documented classes of
// damage (or is a *SegmentError, which always does).
func sentinel(err error) bool {
	for _, e := range []error{ErrCorrupt, ErrChecksum, ErrChain, ErrNewerFormat} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// validSegment returns the bytes of a first segment holding n records.
func validSegment(t testing.TB, n int) []byte {
	dir := t.TempDir()
	l, err := Open(dir, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, err := l.Append([]Entry{{TimeMs: int64(i), Actor: "alice/m/s", Type: "channel_created", Data: []byte(`{"channel":"c"}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	b, err := os.ReadFile(filepath.Join(dir, SegmentName(1)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzOpenSegment puts arbitrary bytes in the first segment of an event
// log. The read-only Reader and Open (with its torn-tail repair) must not
// panic and must report damage only as the documented errors. When Open
// accepts the segment (after cutting a torn tail), what remains must
// verify and replay in full, and take a new record.
func FuzzOpenSegment(f *testing.F) {
	good := validSegment(f, 3)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(good[:len(good)/2])
	f.Add(append(bytes.Clone(good), make([]byte, 40)...))
	flipped := bytes.Clone(good)
	flipped[len(flipped)/3] ^= 1
	f.Add(flipped)
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzTrusted(t, b)
		dir := t.TempDir()
		seg := filepath.Join(dir, SegmentName(1))
		if err := os.WriteFile(seg, b, 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := OpenReader(dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.Verify(); err != nil && !sentinel(err) {
			t.Fatalf("Reader.Verify: undocumented error %v", err)
		}
		l, err := Open(dir, &Options{NoSync: true})
		if err != nil {
			if !sentinel(err) {
				t.Fatalf("Open: undocumented error %v", err)
			}
			return
		}
		defer l.Close()
		n, last, err := r.Verify()
		if err != nil || n != l.LastSeq() || last != l.LastHash() {
			t.Fatalf("after Open: Verify = %d, %v; the log says %d records", n, err, l.LastSeq())
		}
		replayed := uint64(0)
		if err := l.Replay(0, [32]byte{}, func(Record) error { replayed++; return nil }); err != nil || replayed != n {
			t.Fatalf("Replay after Open: %d records, %v; want %d", replayed, err, n)
		}
		if _, err := l.Append([]Entry{{Actor: "a/b/c", Type: "t"}}); err != nil {
			t.Fatalf("Append after Open: %v", err)
		}
		if n2, _, err := r.Verify(); err != nil || n2 != n+1 {
			t.Fatalf("after Append: Verify = %d, %v; want %d", n2, err, n+1)
		}
	})
}

// fuzzTrusted opens the segment as a server does after loading a snapshot
// that covers its first few records (Options.TrustedSeq): damage there is
// kept rather than refused. Open must not panic, must report only the
// documented errors, and a log it opens must take a record and open again.
func fuzzTrusted(t *testing.T, b []byte) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, SegmentName(1)), b, 0o600); err != nil {
		t.Fatal(err)
	}
	opts := &Options{NoSync: true, TrustedSeq: uint64(len(b) % 5), TrustedHash: [32]byte{byte(len(b))}}
	l, err := Open(dir, opts)
	if err != nil {
		if !sentinel(err) {
			t.Fatalf("Open with TrustedSeq %d: undocumented error %v", opts.TrustedSeq, err)
		}
		return
	}
	last := l.LastSeq()
	if _, err := l.Append([]Entry{{Actor: "a/b/c", Type: "t"}}); err != nil {
		t.Fatalf("Append after Open with TrustedSeq %d: %v", opts.TrustedSeq, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(dir, opts)
	if err != nil {
		t.Fatalf("reopen after Append (TrustedSeq %d): %v", opts.TrustedSeq, err)
	}
	if l.LastSeq() != last+1 {
		t.Fatalf("reopen: last seq %d, want %d", l.LastSeq(), last+1)
	}
	l.Close()
}
