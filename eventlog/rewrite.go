package eventlog

import (
	"encoding/binary"
	"fmt"
	"os"

	"github.com/conclave/conclave/atomicfile"
)

// PlainRegion is a part of a plain-log segment that [RewritePlain]
// replaces: one damaged entry, a run of entries that one unreadable frame
// hides, or one intact entry the caller chose.
type PlainRegion struct {
	Segment     string // segment file name
	First, Last uint64 // the indexes of the entries it held
	Offset      int64  // byte offset in the segment
	Bytes       []byte // the bytes replaced, frames included
	// Damage is what a scan found wrong there; nil for an intact entry
	// that RewriteOptions.Drop chose.
	Damage *SegmentError
}

// RewriteOptions configure [RewritePlain].
type RewriteOptions struct {
	// Tail is the rule for the end of the last segment: with TailTorn
	// (what [OpenPlain] would cut) a torn write is left for OpenPlain.
	// Default TailStrict.
	Tail TailRule
	// Drop, if set, chooses intact entries to replace too.
	Drop func(index uint64, data []byte) bool
	// Fill returns the data of the entry that takes index's place.
	// Required.
	Fill func(index uint64) []byte
	// DryRun finds the regions without writing anything.
	DryRun bool
}

// RewritePlain replaces, in the plain-log directory dir, every damaged
// entry that a scan finds (see [ScanPlain] with OnDamage) and every intact
// entry that opts.Drop chooses by entries holding opts.Fill(index): a run
// of n entries that one unreadable frame hides by n entries. Every other
// entry keeps its bytes and its index, so the log keeps its numbering.
// Each segment that changes is replaced atomically (a temporary file,
// fsync, rename, fsync of dir). It returns the regions replaced, in order,
// with their old bytes for the caller to keep; with opts.DryRun it only
// finds them.
//
// dir must not be open as a [Plain] (the caller holds the data dir's
// lock). A gap or an overlap between segments cannot be rewritten: it is
// returned as an error wrapping [ErrCorrupt] before anything is written.
func RewritePlain(dir string, opts *RewriteOptions) ([]PlainRegion, error) {
	if opts == nil || opts.Fill == nil {
		return nil, fmt.Errorf("eventlog: rewrite %s: no Fill", dir)
	}
	segs, err := ListSegments(dir)
	if err != nil {
		return nil, fmt.Errorf("eventlog: rewrite %s: %w", dir, err)
	}
	// First pass: find the damage of every segment. A run hidden at the
	// end of a segment learns its length from the next one, so the
	// rewriting waits for the whole scan.
	damage := map[string][]*SegmentError{}
	var c Chain
	for i, seg := range segs {
		data, err := os.ReadFile(seg.Path)
		if err != nil {
			return nil, fmt.Errorf("eventlog: rewrite %s: %w", dir, err)
		}
		o := &ScanOptions{Tail: TailStrict, OnDamage: func(se *SegmentError) error {
			if s, ok := ParseSegmentName(se.Segment); se.Offset == 0 && ok && se.Seq != s {
				return fmt.Errorf("eventlog: rewrite %s: %w", dir, se) // a gap between segments
			}
			damage[se.Segment] = append(damage[se.Segment], se)
			return nil
		}}
		if i == len(segs)-1 {
			o.Tail = opts.Tail
		}
		if _, err := ScanPlain(seg, data, &c, o, nil); err != nil {
			return nil, err
		}
	}
	if err := c.Finish(&ScanOptions{OnDamage: func(se *SegmentError) error {
		damage[se.Segment] = append(damage[se.Segment], se)
		return nil
	}}); err != nil {
		return nil, err
	}
	// Second pass: rebuild each segment that changes.
	var regions []PlainRegion
	for i, seg := range segs {
		data, err := os.ReadFile(seg.Path)
		if err != nil {
			return nil, fmt.Errorf("eventlog: rewrite %s: %w", dir, err)
		}
		tail := TailStrict
		if i == len(segs)-1 {
			tail = opts.Tail
		}
		out, rs, err := rewriteSegment(seg, data, damage[seg.Name], tail, opts)
		if err != nil {
			return nil, fmt.Errorf("eventlog: rewrite %s: %w", dir, err)
		}
		regions = append(regions, rs...)
		if len(rs) == 0 || opts.DryRun {
			continue
		}
		if err := atomicfile.WriteFile(seg.Path, out, 0o640); err != nil {
			return regions, fmt.Errorf("eventlog: rewrite %s: %w", seg.Path, err)
		}
	}
	return regions, nil
}

// rewriteSegment returns data with its damaged regions (damage, at their
// offsets, in order) and the entries opts.Drop chooses replaced.
func rewriteSegment(seg Segment, data []byte, damage []*SegmentError, tail TailRule, opts *RewriteOptions) ([]byte, []PlainRegion, error) {
	var (
		out     []byte
		regions []PlainRegion
	)
	replace := func(r PlainRegion) {
		regions = append(regions, r)
		for idx := r.First; idx <= r.Last; idx++ {
			d := opts.Fill(idx)
			out = binary.AppendUvarint(out, uint64(crcLen+len(d)))
			out = binary.BigEndian.AppendUint32(out, crc32c(d))
			out = append(out, d...)
		}
	}
	off, index := 0, seg.Index
	for off < len(data) {
		if len(damage) > 0 && damage[0].Offset == int64(off) {
			se := damage[0]
			damage = damage[1:]
			last := max(se.Last, se.Seq)
			if se.Seq != index {
				return nil, nil, fmt.Errorf("%w: damage at seq %d, offset %d holds seq %d", ErrCorrupt, se.Seq, off, index)
			}
			end := len(data) // an unreadable frame: the rest of the segment
			if _, n, err := nextFrame(data[off:]); err == nil && se.Last == 0 {
				end = off + n
			}
			replace(PlainRegion{Segment: seg.Name, First: se.Seq, Last: last, Offset: int64(off),
				Bytes: append([]byte(nil), data[off:end]...), Damage: se})
			off, index = end, last+1
			continue
		}
		payload, n, err := nextFrame(data[off:])
		var entry []byte
		if err == nil {
			entry, err = plainData(payload)
		}
		if err != nil {
			if tail != TailStrict && len(damage) == 0 {
				// The torn tail the scan let pass: OpenPlain cuts it.
				out = append(out, data[off:]...)
				break
			}
			return nil, nil, fmt.Errorf("%w: segment %s changed during the rewrite (seq %d, offset %d)", ErrCorrupt, seg.Name, index, off)
		}
		if opts.Drop != nil && opts.Drop(index, entry) {
			replace(PlainRegion{Segment: seg.Name, First: index, Last: index, Offset: int64(off),
				Bytes: append([]byte(nil), data[off:off+n]...)})
		} else {
			out = append(out, data[off:off+n]...)
		}
		off += n
		index++
	}
	if len(damage) > 0 {
		return nil, nil, fmt.Errorf("%w: damage at seq %d, offset %d not found in segment %s", ErrCorrupt, damage[0].Seq, damage[0].Offset, seg.Name)
	}
	return out, regions, nil
}
