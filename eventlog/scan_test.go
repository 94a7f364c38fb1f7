package eventlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
)

// eventFrames returns the framed records 1..n, chained, and the offset
// just past each.
func eventFrames(n int) ([]byte, []int) {
	var (
		data []byte
		ends []int
		prev [32]byte
	)
	for i, e := range testEntries(1, n) {
		rec := EncodeRecord(&Record{Seq: uint64(i + 1), TimeMs: e.TimeMs, Actor: e.Actor, Type: e.Type, Data: e.Data, Prev: prev})
		prev = sha256Sum(rec)
		data = binary.AppendUvarint(data, uint64(len(rec)))
		data = append(data, rec...)
		ends = append(ends, len(data))
	}
	return data, ends
}

// TestScanEventsCutsEveryPrefix cuts a segment at every byte of its last
// record: with TailTorn the valid prefix always ends at the record before
// it; TailStrict refuses every cut.
func TestScanEventsCutsEveryPrefix(t *testing.T) {
	data, ends := eventFrames(3)
	seg := Segment{Index: 1, Name: SegmentName(1)}
	for cut := ends[1]; cut < ends[2]; cut++ {
		var c Chain
		n, err := ScanEvents(seg, data[:cut], &c, &ScanOptions{Tail: TailTorn}, nil)
		if err != nil || n != ends[1] || c.Next != 3 {
			t.Fatalf("cut at %d: valid prefix %d, next %d, err %v; want %d, 3, nil", cut, n, c.Next, err, ends[1])
		}
		c = Chain{}
		if _, err := ScanEvents(seg, data[:cut], &c, nil, nil); cut > ends[1] && err == nil {
			t.Fatalf("cut at %d: strict scan accepted a torn record", cut)
		}
	}
}

// TestScanEventsTailRules tells the three tail rules apart on a last
// record whose frame is whole but whose checksum fails.
func TestScanEventsTailRules(t *testing.T) {
	data, ends := eventFrames(3)
	data[len(data)-1] ^= 1
	seg := Segment{Index: 1, Name: SegmentName(1)}
	for _, tc := range []struct {
		name string
		tail TailRule
		ok   bool
	}{
		{"strict", TailStrict, false},
		{"writing", TailWriting, false},
		{"torn", TailTorn, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Chain
			n, err := ScanEvents(seg, data, &c, &ScanOptions{Tail: tc.tail}, nil)
			if tc.ok {
				if err != nil || n != ends[1] {
					t.Fatalf("got %d, %v; want %d, nil", n, err, ends[1])
				}
				return
			}
			wantSegmentError(t, err, seg.Name, 3, ErrChecksum)
		})
	}
}

// TestScanEventsGoesOnPastDamage damages records in the middle of a
// segment three ways and checks that a scan with OnDamage reports each
// with its segment, seq and offset, and still sees every good record.
func TestScanEventsGoesOnPastDamage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(data []byte, ends []int)
		want   []SegmentError // Segment, Seq, Last, Offset and a sentinel in Err
		good   int
	}{
		{"flipped byte in record 3", func(d []byte, e []int) { d[e[2]-1] ^= 1 },
			[]SegmentError{{Seq: 3, Err: ErrChecksum}}, 9},
		{"length of record 3 overflows", func(d []byte, e []int) {
			copy(d[e[1]:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		}, []SegmentError{{Seq: 3, Err: ErrCorrupt}}, 9},
		{"records 3 and 4 zeroed", func(d []byte, e []int) { clear(d[e[1]:e[3]]) },
			[]SegmentError{{Seq: 3, Last: 4, Err: ErrCorrupt}}, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, ends := eventFrames(10)
			tc.damage(data, ends)
			seg := Segment{Index: 1, Name: SegmentName(1)}
			var got []*SegmentError
			var good []uint64
			var c Chain
			n, err := ScanEvents(seg, data, &c, &ScanOptions{OnDamage: func(se *SegmentError) error {
				got = append(got, se)
				return nil
			}}, func(r Record) error {
				good = append(good, r.Seq)
				return nil
			})
			if err == nil {
				err = c.Finish(nil)
			}
			if err != nil || n != len(data) || c.Next != 11 {
				t.Fatalf("got %d, next %d, %v; want %d, 11, nil", n, c.Next, err, len(data))
			}
			if len(good) != tc.good {
				t.Errorf("good records %v, want %d of them", good, tc.good)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("damage %v, want %v", got, tc.want)
			}
			for i, w := range tc.want {
				g := got[i]
				if g.Segment != seg.Name || g.Seq != w.Seq || g.Last != w.Last || g.Offset != int64(ends[w.Seq-2]) || !errors.Is(g, w.Err) {
					t.Errorf("damage %d: got %+v, want seq %d-%d at offset %d wrapping %v", i, g, w.Seq, w.Last, ends[w.Seq-2], w.Err)
				}
			}
		})
	}
}

// TestReaderReportsDamageAcrossSegments damages one record in an early
// segment and the rest of a later one, and checks that ScanWith reports
// both, naming the seqs the unreadable rest held, and delivers every good
// record once.
func TestReaderReportsDamageAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, testOpts())
	mustAppend(t, l, testEntries(1, 40))
	l.Close()
	segs := segmentsOf(t, dir)
	if len(segs) < 4 {
		t.Fatalf("want at least 4 segments, got %d", len(segs))
	}
	// A flipped byte in the first record of segment 1.
	offs, data := frameOffsets(t, segs[1].Path)
	data[offs[0]+5] ^= 1
	writeFile(t, segs[1].Path, data)
	// The next segment is cut inside its second record: the rest of it is
	// unreadable.
	offs, data = frameOffsets(t, segs[2].Path)
	writeFile(t, segs[2].Path, data[:offs[1]+3])

	r, err := OpenReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	var damage []string
	seen := map[uint64]bool{}
	err = r.ScanWith(&ScanOptions{Tail: TailWriting, OnDamage: func(se *SegmentError) error {
		damage = append(damage, fmt.Sprintf("%s %d-%d @%d", se.Segment, se.Seq, se.Last, se.Offset))
		return nil
	}}, func(rec Record) error {
		if seen[rec.Seq] {
			t.Errorf("seq %d delivered twice", rec.Seq)
		}
		seen[rec.Seq] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		fmt.Sprintf("%s %d-0 @%d", segs[1].Name, segs[1].Index, 0),
		fmt.Sprintf("%s %d-%d @%d", segs[2].Name, segs[2].Index+1, segs[3].Index-1, offs[1]),
	}
	if fmt.Sprint(damage) != fmt.Sprint(want) {
		t.Errorf("damage %v, want %v", damage, want)
	}
	if wantGood := 40 - 1 - int(segs[3].Index-segs[2].Index-1); len(seen) != wantGood || !seen[segs[3].Index] {
		t.Errorf("%d good records, want %d", len(seen), wantGood)
	}
	// Without OnDamage the first damage stops the scan.
	wantSegmentError(t, r.Scan(func(Record) error { return nil }), segs[1].Name, segs[1].Index, ErrChecksum)
}

// TestPlainReaderReportsDamage damages a history entry and checks that
// PlainReader reports it by index and offset and reads on.
func TestPlainReaderReportsDamage(t *testing.T) {
	dir := t.TempDir()
	p, err := OpenPlain(dir, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	var datas [][]byte
	for i := range 30 {
		datas = append(datas, []byte(fmt.Sprintf(`{"i":%d,"pad":"%0200d"}`, i, 0)))
	}
	if _, err := p.Append(datas); err != nil {
		t.Fatal(err)
	}
	p.Close()
	segs := segmentsOf(t, dir)
	offs, data := frameOffsets(t, segs[1].Path)
	data[offs[1]+10] ^= 1
	writeFile(t, segs[1].Path, data)

	r, err := OpenPlainReader(filepath.Clean(dir))
	if err != nil {
		t.Fatal(err)
	}
	var damage []*SegmentError
	good := 0
	err = r.Scan(&ScanOptions{OnDamage: func(se *SegmentError) error {
		damage = append(damage, se)
		return nil
	}}, func(uint64, []byte) error {
		good++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(damage) != 1 || damage[0].Seq != segs[1].Index+1 || damage[0].Offset != int64(offs[1]) || !errors.Is(damage[0], ErrChecksum) {
		t.Errorf("damage %v, want index %d at offset %d", damage, segs[1].Index+1, offs[1])
	}
	if good != 29 {
		t.Errorf("%d good entries, want 29", good)
	}
}

// FuzzScanDamaged feeds arbitrary bytes to both scanners with every tail
// rule, going on past damage: they never panic, always end, and never
// claim more bytes than they were given.
func FuzzScanDamaged(f *testing.F) {
	data, ends := eventFrames(4)
	f.Add(data, uint8(0))
	f.Add(data[:ends[2]+3], uint8(2))
	zeroed := append([]byte(nil), data...)
	clear(zeroed[ends[0]:ends[1]])
	f.Add(zeroed, uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, rule uint8) {
		seg := Segment{Index: 1, Name: SegmentName(1)}
		damage := 0
		opts := &ScanOptions{Tail: TailRule(rule % 3), OnDamage: func(*SegmentError) error {
			damage++
			return nil
		}}
		var c Chain
		if n, err := ScanEvents(seg, b, &c, opts, nil); err != nil || n > len(b) {
			t.Fatalf("ScanEvents: %d of %d bytes, %v", n, len(b), err)
		}
		if err := c.Finish(opts); err != nil {
			t.Fatal(err)
		}
		c = Chain{}
		if n, err := ScanPlain(seg, b, &c, opts, nil); err != nil || n > len(b) {
			t.Fatalf("ScanPlain: %d of %d bytes, %v", n, len(b), err)
		}
	})
}
