package eventlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

func sampleRecords() []Record {
	return []Record{
		{Seq: 1, TimeMs: 1_700_000_000_000, Actor: "server", Type: "server_started", Data: []byte(`{}`)},
		{Seq: 2, TimeMs: -1, Actor: "", Type: "", Data: nil, Prev: [32]byte{1, 2, 3}},
		{Seq: 1 << 40, TimeMs: 42, Actor: "alice/laptop/s1", Type: "channel_created",
			Data: []byte(`{"channel":"general"}`), Prev: sha256.Sum256([]byte("x"))},
		{Seq: 7, Actor: strings.Repeat("a", MaxFieldLen), Type: strings.Repeat("t", 300), Data: bytes.Repeat([]byte{0}, 70000)},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for i, r := range sampleRecords() {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			b := EncodeRecord(&r)
			if len(b) != encodedLen(len(r.Actor), len(r.Type), len(r.Data)) {
				t.Fatalf("encoded %d bytes, want %d", len(b), encodedLen(len(r.Actor), len(r.Type), len(r.Data)))
			}
			got, err := DecodeRecord(b)
			if err != nil {
				t.Fatalf("DecodeRecord: %v", err)
			}
			if got.Version != FormatVersion || got.Seq != r.Seq || got.TimeMs != r.TimeMs || got.Actor != r.Actor ||
				got.Type != r.Type || !bytes.Equal(got.Data, r.Data) || got.Prev != r.Prev {
				t.Fatalf("got %+v, want %+v", got, r)
			}
			if got.Hash != sha256.Sum256(b) {
				t.Fatalf("got hash %x, want sha256 of the encoding", got.Hash)
			}
			if again := EncodeRecord(&got); !bytes.Equal(again, b) {
				t.Fatal("re-encoding the decoded record changed the bytes")
			}
			// Decoded data must not alias the input.
			if len(got.Data) > 0 {
				b[len(b)-5] ^= 0xff
				if !bytes.Equal(got.Data, r.Data) {
					t.Fatal("decoded Data aliases the input")
				}
			}
		})
	}
}

func TestEncodeRecordTooLarge(t *testing.T) {
	for _, r := range []Record{
		{Actor: strings.Repeat("a", MaxFieldLen+1)},
		{Type: strings.Repeat("a", MaxFieldLen+1)},
		{Data: make([]byte, MaxDataLen+1)},
	} {
		if b := EncodeRecord(&r); b != nil {
			t.Errorf("EncodeRecord of an oversized record returned %d bytes, want nil", len(b))
		}
	}
}

// withCRC recomputes the trailing CRC of a record after it was edited.
func withCRC(b []byte) []byte {
	binary.BigEndian.PutUint32(b[len(b)-4:], crc32c(b[:len(b)-4]))
	return b
}

func TestDecodeRecordCorruption(t *testing.T) {
	good := EncodeRecord(&Record{Seq: 9, TimeMs: 5, Actor: "bob/box/s", Type: "t", Data: []byte("hello")})
	edit := func(f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), good...))
	}
	// Offsets of the fields of good.
	const (
		offActorLen = 1 + 8 + 8 + 32
		offTypeLen  = offActorLen + 2 + len("bob/box/s")
		offDataLen  = offTypeLen + 2 + len("t")
	)
	type tc struct {
		name string
		b    []byte
		want error
	}
	cases := []tc{
		{"empty", nil, ErrCorrupt},
		{"zeros", make([]byte, 100), ErrChecksum},
		{"version 0", edit(func(b []byte) []byte { b[0] = 0; return withCRC(b) }), ErrCorrupt},
		{"version 2", edit(func(b []byte) []byte { b[0] = 2; return withCRC(b) }), ErrNewerFormat},
		{"version 255 short", withCRC([]byte{255, 0, 0, 0, 0}), ErrNewerFormat},
		{"short with good crc", withCRC([]byte{1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0}), ErrCorrupt},
		{"huge actor len", edit(func(b []byte) []byte { b[offActorLen], b[offActorLen+1] = 0xff, 0xff; return withCRC(b) }), ErrCorrupt},
		{"huge type len", edit(func(b []byte) []byte { b[offTypeLen], b[offTypeLen+1] = 0xff, 0xff; return withCRC(b) }), ErrCorrupt},
		{"huge data len", edit(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offDataLen:], 0xffffffff)
			return withCRC(b)
		}), ErrCorrupt},
		{"short data len", edit(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offDataLen:], 2)
			return withCRC(b)
		}), ErrCorrupt},
		{"extra byte", withCRC(append(append([]byte(nil), good[:len(good)-4]...), 'x', 0, 0, 0, 0)), ErrCorrupt},
	}
	for n := 0; n < len(good); n++ {
		want := ErrChecksum
		if n < 5 {
			want = ErrCorrupt
		}
		cases = append(cases, tc{fmt.Sprintf("truncated to %d", n), good[:n:n], want})
	}
	for i := range good {
		cases = append(cases, tc{fmt.Sprintf("flip byte %d", i), edit(func(b []byte) []byte { b[i] ^= 0x10; return b }), ErrChecksum})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeRecord(c.b)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

// TestRecordGolden pins the version-1 encoding. Never regenerate it for an
// existing version: old logs must stay readable.
func TestRecordGolden(t *testing.T) {
	r := Record{Seq: 3, TimeMs: 1_764_000_000_000, Actor: "alice/laptop/s1", Type: "channel_created",
		Data: []byte(`{"channel":"general"}`), Prev: sha256.Sum256([]byte("prev"))}
	got := hex.EncodeToString(EncodeRecord(&r)) + "\n"
	path := filepath.Join("testdata", "record-v1.hex")
	if *update {
		writeFile(t, path, []byte(got))
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestRecordGolden -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("encoding changed:\ngot  %swant %s(if the change is intended, bump FormatVersion; -update rewrites the golden)", got, want)
	}
	b, _ := hex.DecodeString(strings.TrimSpace(string(want)))
	dec, err := DecodeRecord(b)
	if err != nil || dec.Actor != r.Actor || dec.Seq != r.Seq {
		t.Fatalf("golden decodes to %+v, %v", dec, err)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, r := range sampleRecords()[:3] {
		f.Add(EncodeRecord(&r))
	}
	f.Add([]byte{})
	f.Add(make([]byte, 61))
	f.Add(withCRC([]byte{2, 0, 0, 0, 0}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrNewerFormat) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		if r.Hash != sha256.Sum256(b) {
			t.Fatal("hash is not sha256 of the input")
		}
		if again := EncodeRecord(&r); !bytes.Equal(again, b) {
			t.Fatalf("round trip changed bytes:\n%x\n%x", b, again)
		}
	})
}
