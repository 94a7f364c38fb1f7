package eventlog

import (
	"errors"
	"fmt"
)

// walk visits the frames of an event log's segments in order, from entry
// from up to entry to (0: to the end). It checks that the log starts at
// index 1 and that each segment starts where the previous one ended. An
// incomplete frame ends the walk quietly only if tornEnd is set, it is in
// the last segment and no valid record follows it; anywhere else it is
// ErrCorrupt. Frames before from are skipped without being decoded.
func walk(segs []segmentFile, from, to uint64, tornEnd bool,
	readSeg func(segmentFile) ([]byte, error),
	visit func(seg segmentFile, off int, index uint64, payload []byte) error) error {
	if len(segs) == 0 {
		if to >= from {
			return fmt.Errorf("%w: no segment files, want entries up to %d", ErrCorrupt, to)
		}
		return nil
	}
	if segs[0].index != 1 {
		return &SegmentError{Segment: segs[0].name, Seq: 1, Offset: -1,
			Err: fmt.Errorf("%w: first segment starts at index %d, want 1", ErrCorrupt, segs[0].index)}
	}
	start := 0
	for i, s := range segs {
		if s.index <= from {
			start = i
		}
	}
	next := segs[start].index
	for i := start; i < len(segs); i++ {
		seg := segs[i]
		if to > 0 && next > to {
			return nil
		}
		if seg.index != next {
			return &SegmentError{Segment: seg.name, Seq: next, Offset: 0,
				Err: fmt.Errorf("%w: segment starts at index %d, want %d", ErrCorrupt, seg.index, next)}
		}
		data, err := readSeg(seg)
		if err != nil {
			return err
		}
		for off := 0; off < len(data); {
			if to > 0 && next > to {
				return nil
			}
			payload, n, err := nextFrame(data[off:])
			if err != nil {
				if errors.Is(err, errIncomplete) {
					// A record being written, unless a valid one follows:
					// then a length field is damaged.
					if tornEnd && i == len(segs)-1 && !logCodec.validAfter(data, off, next) {
						return nil
					}
					err = fmt.Errorf("%w: incomplete frame of %d bytes", ErrCorrupt, len(data)-off)
				}
				return &SegmentError{Segment: seg.name, Seq: next, Offset: int64(off), Err: err}
			}
			if next >= from {
				if err := visit(seg, off, next, payload); err != nil {
					return err
				}
			}
			off += n
			next++
		}
	}
	if to > 0 && next <= to {
		seg := segs[len(segs)-1]
		return &SegmentError{Segment: seg.name, Seq: next, Offset: -1,
			Err: fmt.Errorf("%w: log ends at seq %d, want %d", ErrCorrupt, next-1, to)}
	}
	return nil
}

// chain verifies records in order: checksum and format, that each record's
// seq is its wal index, and that its Prev is the previous record's Hash.
type chain struct {
	prev [32]byte
}

func (c *chain) check(seg segmentFile, off int, index uint64, payload []byte) (Record, error) {
	rec, err := DecodeRecord(payload)
	if err == nil && rec.Seq != index {
		err = fmt.Errorf("%w: record says seq %d", ErrCorrupt, rec.Seq)
	}
	if err == nil && rec.Prev != c.prev {
		err = fmt.Errorf("%w: prev %x, want %x", ErrChain, rec.Prev[:6], c.prev[:6])
	}
	if err != nil {
		return Record{}, &SegmentError{Segment: seg.name, Seq: index, Offset: int64(off), Err: err}
	}
	c.prev = rec.Hash
	return rec, nil
}
