package eventlog

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/conclave/conclave/atomicfile"
)

// Repair policy (see doc.go): only the tail of the last segment is ever
// cut, and only when what follows the last valid entry could be a torn
// write — an incomplete frame, a zero-filled region, an entry failing its
// checksum — and no valid entry follows it. Everything else is refused with
// ErrCorrupt naming the segment and sequence number.

// checkFunc validates the payload of the entry with the given wal index.
// fatal reports damage that cannot be a torn write (a complete, checksummed
// entry that is wrong anyway, or a newer format) and must not be cut.
type checkFunc func(payload []byte, index uint64) (fatal bool, err error)

// codec is what the shared repair code needs to know about a payload format.
type codec struct {
	// newCheck returns a checker for one pass over a segment; it may keep
	// state (the event log checks the hash chain within the segment).
	newCheck func() checkFunc
	// validAfter reports whether a valid entry with index >= index starts
	// somewhere after the bad entry at data[off:]. If so the bad entry is
	// damage in the middle of the log, not a torn tail.
	validAfter func(data []byte, off int, index uint64) bool
}

// tailScan is the result of scanning the last segment.
type tailScan struct {
	seg   Segment
	size  int64  // bytes of valid entries (the file size after repair)
	count uint64 // valid entries in the segment
	last  []byte // payload of the last valid entry, nil if count == 0
	// lastDamaged is set when the last entry kept is a damaged record that
	// a trusted snapshot covers (see Options.TrustedSeq).
	lastDamaged bool
	segments    int // number of segment files
}

// scanTail parses the last segment and finds where its valid entries end.
func scanTail(seg Segment, c codec, opts *Options) (tailScan, []byte, error) {
	ts := tailScan{seg: seg}
	data, err := os.ReadFile(seg.Path)
	if err != nil {
		return ts, nil, fmt.Errorf("read last segment: %w", err)
	}
	check := c.newCheck()
	off, index := 0, seg.Index
	for off < len(data) {
		payload, n, ferr := nextFrame(data[off:])
		var (
			fatal bool
			cerr  = ferr
		)
		if ferr == nil {
			fatal, cerr = check(payload, index)
		}
		if cerr == nil {
			ts.count++
			ts.last, ts.lastDamaged = payload, false
			off += n
			index++
			continue
		}
		if ferr == nil && index <= opts.TrustedSeq {
			// A whole record, damaged, that the caller's snapshot covers:
			// keep it (the log is the audit trail) and go on; the chain
			// check restarts after it.
			opts.Logger.Warn("damaged event record covered by the trusted snapshot; audit verify reports it",
				"segment", seg.Name, "seq", index, "err", cerr)
			ts.count++
			ts.last, ts.lastDamaged = payload, true
			off += n
			index++
			check = c.newCheck()
			continue
		}
		if ferr == nil && opts.KeepDamaged && c.validAfter(data, off, index) {
			// A whole entry, damaged, in the middle of the segment: the
			// caller reads around it (see Options.KeepDamaged).
			opts.Logger.Warn("damaged log entry kept in place; valid entries follow it",
				"dir", filepath.Dir(seg.Path), "segment", seg.Name, "seq", index, "err", cerr)
			ts.count++
			ts.last, ts.lastDamaged = payload, true
			off += n
			index++
			check = c.newCheck()
			continue
		}
		if fatal {
			return ts, nil, &SegmentError{Segment: seg.Name, Seq: index, Offset: int64(off), Err: cerr}
		}
		if c.validAfter(data, off, index) {
			return ts, nil, &SegmentError{Segment: seg.Name, Seq: index, Offset: int64(off),
				Err: fmt.Errorf("%w: bad entry followed by valid ones, not a torn tail: %w", ErrCorrupt, cerr)}
		}
		break
	}
	ts.size = int64(off)
	return ts, data, nil
}

// repairTail scans the last segment of dir and cuts a torn tail off it,
// keeping the cut bytes in a .broken file and fsyncing file and directory.
func repairTail(dir string, c codec, sync bool, opts *Options) (tailScan, error) {
	logger := opts.Logger
	segs, err := ListSegments(dir)
	if err != nil {
		return tailScan{}, err
	}
	if len(segs) == 0 {
		return tailScan{}, nil
	}
	ts, data, err := scanTail(segs[len(segs)-1], c, opts)
	ts.segments = len(segs)
	if err != nil {
		return ts, err
	}
	if ts.size == int64(len(data)) {
		return ts, nil
	}
	cut, broken, err := cutSegment(ts.seg.Path, ts.size, data, sync)
	if err != nil {
		return ts, err
	}
	if sync {
		if err := atomicfile.SyncDir(dir); err != nil {
			return ts, err
		}
	}
	logger.Warn("torn log tail cut",
		"dir", dir, "segment", ts.seg.Name, "seq", ts.seg.Index+ts.count,
		"cut_bytes", cut, "kept_entries", ts.count, "broken", broken)
	return ts, nil
}

// cutAfter makes index last the last entry on disk: segments that start
// after it are renamed to .broken and the segment holding it is cut right
// after it (keeping the cut bytes). It is how a failed batch is undone,
// whether its bytes reached the disk whole, in part or not at all.
func cutAfter(dir string, last uint64, sync bool, logger *slog.Logger) error {
	segs, err := ListSegments(dir)
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		if last == 0 {
			return nil
		}
		return fmt.Errorf("%w: no segment files, want entries up to %d", ErrCorrupt, last)
	}
	if segs[0].Index > last+1 {
		return &SegmentError{Segment: segs[0].Name, Seq: last, Offset: -1,
			Err: fmt.Errorf("%w: first segment starts after index %d", ErrCorrupt, last+1)}
	}
	k := 0 // the segment that will be the last one
	for i, s := range segs {
		if s.Index <= last {
			k = i
		}
	}
	changed := false
	for _, s := range segs[k+1:] {
		to := brokenPath(s.Path)
		if err := os.Rename(s.Path, to); err != nil {
			return fmt.Errorf("set aside segment %s: %w", s.Name, err)
		}
		changed = true
		logger.Warn("segment of failed batch set aside", "dir", dir, "segment", s.Name, "seq", s.Index, "broken", to)
	}
	keep := segs[k]
	data, err := os.ReadFile(keep.Path)
	if err != nil {
		return fmt.Errorf("read segment %s: %w", keep.Name, err)
	}
	off := 0
	if keep.Index <= last {
		off, err = skipFrames(data, last-keep.Index+1)
		if err != nil {
			if errors.Is(err, errIncomplete) {
				err = fmt.Errorf("%w: entry missing", ErrCorrupt)
			}
			return &SegmentError{Segment: keep.Name, Seq: keep.Index, Offset: int64(off), Err: err}
		}
	}
	cut, broken, err := cutSegment(keep.Path, int64(off), data, sync)
	if err != nil {
		return err
	}
	if cut > 0 {
		changed = true
		logger.Warn("failed batch cut from segment", "dir", dir, "segment", keep.Name, "seq", last+1, "cut_bytes", cut, "broken", broken)
	}
	if changed && sync {
		return atomicfile.SyncDir(dir)
	}
	return nil
}
