package eventlog

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRewritePlain damages a plain log in three ways — a flipped byte in
// an entry of the first segment, an unreadable frame that hides the rest
// of a middle segment, a flipped byte in the middle of the last segment —
// and asks for one intact entry to be dropped: RewritePlain replaces
// exactly those entries by fill entries, keeps every other entry's index
// and bytes, and leaves a log that scans clean. A dry run writes nothing.
func TestRewritePlain(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "history")
	p := openPlain(t, dir, &Options{NoSync: true, SegmentSize: 1024})
	datas := plainDatas(1, 30)
	datas[16] = []byte("drop-me " + string(datas[16])) // entry 17
	if _, err := p.Append(datas); err != nil {
		t.Fatal(err)
	}
	p.Close()
	segs := segmentsOf(t, dir)
	if len(segs) < 4 {
		t.Fatalf("%d segments, want 4 or more", len(segs))
	}
	// Entry 2: a flipped byte.
	offs, b := frameOffsets(t, segs[0].Path)
	b[offs[1]+20] ^= 1
	writeFile(t, segs[0].Path, b)
	// The second entry of segment 1 on: an unreadable frame length.
	offs, b = frameOffsets(t, segs[1].Path)
	copy(b[offs[1]:], []byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	writeFile(t, segs[1].Path, b)
	hidden := segs[2].Index - 1 - segs[1].Index // entries hidden: index segs[1].Index+1 .. segs[2].Index-1
	// The first entry of the last segment: a flipped byte.
	last := segs[len(segs)-1]
	offs, b = frameOffsets(t, last.Path)
	if len(offs) < 2 {
		t.Fatalf("last segment holds %d entries", len(offs))
	}
	b[offs[0]+20] ^= 1
	writeFile(t, last.Path, b)

	before := map[string][]byte{}
	for _, s := range segs {
		before[s.Name] = readFile(t, s.Path)
	}
	fill := func(idx uint64) []byte { return []byte(fmt.Sprintf("gap %d", idx)) }
	opts := &RewriteOptions{Tail: TailTorn, Fill: fill, DryRun: true,
		Drop: func(_ uint64, d []byte) bool { return bytes.HasPrefix(d, []byte("drop-me")) }}
	regions, err := RewritePlain(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		first, last uint64
		damaged     bool
	}
	var gs []got
	for _, r := range regions {
		gs = append(gs, got{r.First, r.Last, r.Damage != nil})
	}
	want := []got{{2, 2, true}, {segs[1].Index + 1, segs[1].Index + hidden, true}, {17, 17, false}, {last.Index, last.Index, true}}
	slices.SortFunc(want, func(a, b got) int { return int(a.first) - int(b.first) })
	if !slices.Equal(gs, want) {
		t.Fatalf("regions %+v, want %+v", gs, want)
	}
	for _, s := range segs {
		if !bytes.Equal(readFile(t, s.Path), before[s.Name]) {
			t.Fatalf("the dry run changed %s", s.Name)
		}
	}

	opts.DryRun = false
	regions2, err := RewritePlain(dir, opts)
	if err != nil || len(regions2) != len(regions) {
		t.Fatalf("RewritePlain = %d regions, %v; want %d", len(regions2), err, len(regions))
	}
	for i, r := range regions2 {
		if !bytes.Equal(r.Bytes, regions[i].Bytes) || r.Segment != regions[i].Segment {
			t.Fatalf("region %d differs from the dry run's", i)
		}
	}
	replaced := map[uint64]bool{}
	for _, r := range regions2 {
		for i := r.First; i <= r.Last; i++ {
			replaced[i] = true
		}
	}
	rd, err := OpenPlainReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	next := uint64(1)
	err = rd.Scan(&ScanOptions{OnDamage: func(se *SegmentError) error { return se }}, func(idx uint64, d []byte) error {
		if idx != next {
			return fmt.Errorf("index %d, want %d", idx, next)
		}
		next++
		switch {
		case replaced[idx] && !bytes.Equal(d, fill(idx)):
			return fmt.Errorf("entry %d = %q, want the fill", idx, d)
		case !replaced[idx] && !bytes.Equal(d, datas[idx-1]):
			return fmt.Errorf("entry %d = %q, want the original", idx, d)
		}
		return nil
	})
	if err != nil || next != 31 {
		t.Fatalf("scan after the rewrite: %v (next %d)", err, next)
	}
	p = openPlain(t, dir, &Options{NoSync: true, SegmentSize: 1024})
	if p.FirstIndex() != 1 || p.LastIndex() != 30 {
		t.Fatalf("after the rewrite the log holds %d-%d", p.FirstIndex(), p.LastIndex())
	}
	if d, err := p.Read(18); err != nil || !bytes.Equal(d, datas[17]) {
		t.Fatalf("Read(18) = %q, %v", d, err)
	}
	p.Close()
	if again, err := RewritePlain(dir, &RewriteOptions{Tail: TailTorn, Fill: fill}); err != nil || len(again) != 0 {
		t.Fatalf("a second rewrite found %d regions, %v", len(again), err)
	}
}

// TestRewritePlainRefusesAGap: a missing segment cannot be rewritten.
func TestRewritePlainRefusesAGap(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "history")
	p := openPlain(t, dir, &Options{NoSync: true, SegmentSize: 1024})
	if _, err := p.Append(plainDatas(1, 30)); err != nil {
		t.Fatal(err)
	}
	p.Close()
	segs := segmentsOf(t, dir)
	writeFile(t, segs[1].Path, nil)
	_, err := RewritePlain(dir, &RewriteOptions{Fill: func(uint64) []byte { return nil }})
	if err == nil || !strings.Contains(err.Error(), "segment starts at index") {
		t.Fatalf("got %v, want a gap between segments", err)
	}
}
