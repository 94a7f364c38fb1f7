package eventlog

import (
	"errors"
	"fmt"
)

// walk visits the frames of an event log's segments in order, from entry
// from up to entry to (0: to the end), for [Log.Replay], which knows where
// the log ends. It checks that the log starts at index 1 and that each
// segment starts where the previous one ended; an incomplete frame is
// ErrCorrupt. Frames before from are skipped without being decoded.
func walk(segs []Segment, from, to uint64,
	readSeg func(Segment) ([]byte, error),
	visit func(seg Segment, off int, index uint64, payload []byte) error) error {
	if len(segs) == 0 {
		if to >= from {
			return fmt.Errorf("%w: no segment files, want entries up to %d", ErrCorrupt, to)
		}
		return nil
	}
	if segs[0].Index != 1 {
		return &SegmentError{Segment: segs[0].Name, Seq: 1, Offset: -1,
			Err: fmt.Errorf("%w: first segment starts at index %d, want 1", ErrCorrupt, segs[0].Index)}
	}
	start := 0
	for i, s := range segs {
		if s.Index <= from {
			start = i
		}
	}
	next := segs[start].Index
	for i := start; i < len(segs); i++ {
		seg := segs[i]
		if to > 0 && next > to {
			return nil
		}
		if seg.Index != next {
			return &SegmentError{Segment: seg.Name, Seq: next, Offset: 0,
				Err: fmt.Errorf("%w: segment starts at index %d, want %d", ErrCorrupt, seg.Index, next)}
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
					err = fmt.Errorf("%w: incomplete frame of %d bytes", ErrCorrupt, len(data)-off)
				}
				return &SegmentError{Segment: seg.Name, Seq: next, Offset: int64(off), Err: err}
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
		return &SegmentError{Segment: seg.Name, Seq: next, Offset: -1,
			Err: fmt.Errorf("%w: log ends at seq %d, want %d", ErrCorrupt, next-1, to)}
	}
	return nil
}
