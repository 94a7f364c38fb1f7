package eventlog

import (
	"errors"
	"fmt"
	"os"
)

// Reader reads an event-log directory without opening it as a [Log]: it
// parses the segment files itself, never repairs, takes no lock and writes
// nothing, so it can run next to a live server (audit, backup). Segments
// are listed at each Scan; a record still being written at the very end of
// the last segment ends the scan quietly.
//
// A Reader holds no resources and is safe for concurrent use.
type Reader struct {
	dir string
}

// OpenReader returns a Reader for the event-log directory dir. It fails
// if dir does not exist or is not a directory; an empty directory is an
// empty log.
func OpenReader(dir string) (*Reader, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("eventlog: open reader: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("eventlog: open reader: %s is not a directory", dir)
	}
	return &Reader{dir: dir}, nil
}

// Dir returns the directory the Reader reads.
func (r *Reader) Dir() string { return r.dir }

// Scan calls fn for every record from seq 1 on, in order, verifying each
// record's checksum and format, that its seq is its position, that the
// segments join up, and the hash chain (seq 1's Prev is zero). It stops at
// the first break with a [*SegmentError] naming segment and seq and
// wrapping [ErrCorrupt], [ErrChecksum], [ErrChain] or [ErrNewerFormat].
// An incomplete frame at the very end of the last segment is the end of
// the log, not an error; anywhere else it is [ErrCorrupt]. An error from
// fn stops the scan and is returned wrapped.
//
// A scan beside a live writer that rolls to new segment files can list a
// newer segment but miss an older one created during the listing (readdir
// makes no promise about entries created meanwhile), and so see a gap
// that is not on disk. When a scan fails on such a structural break and
// the segment files changed during it, Scan lists them again and
// re-verifies from seq 1, passing fn only records it has not passed yet,
// up to maxScans times in all.
func (r *Reader) Scan(fn func(Record) error) error {
	var delivered uint64 // seq of the last record passed to fn
	for attempt := 1; ; attempt++ {
		before, err := listSegments(r.dir)
		if err != nil {
			return fmt.Errorf("eventlog: scan: %w", err)
		}
		err = r.scanOnce(before, func(rec Record) error {
			if rec.Seq <= delivered {
				return nil // verified again, passed on by an earlier attempt
			}
			delivered = rec.Seq
			return fn(rec)
		})
		if err == nil || attempt == maxScans || !structural(err) {
			return err
		}
		after, lerr := listSegments(r.dir)
		if lerr != nil || sameSegments(before, after) {
			return err
		}
	}
}

// maxScans bounds how often Scan reads a log that keeps changing.
const maxScans = 3

// structural reports whether err is damage to the layout of the log (a
// gap between segments, an incomplete frame) rather than to a record's
// content (checksum, chain, format).
func structural(err error) bool {
	var se *SegmentError
	return errors.As(err, &se) && errors.Is(err, ErrCorrupt) &&
		!errors.Is(err, ErrChecksum) && !errors.Is(err, ErrChain) && !errors.Is(err, ErrNewerFormat)
}

func sameSegments(a, b []segmentFile) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].path != b[i].path {
			return false
		}
	}
	return true
}

func (r *Reader) scanOnce(segs []segmentFile, fn func(Record) error) error {
	var c chain
	readSeg := func(seg segmentFile) ([]byte, error) {
		b, err := os.ReadFile(seg.path)
		if err != nil {
			return nil, fmt.Errorf("eventlog: scan: %w", err)
		}
		return b, nil
	}
	return walk(segs, 1, 0, true, readSeg, func(seg segmentFile, off int, index uint64, payload []byte) error {
		rec, err := c.check(seg, off, index, payload)
		if err != nil {
			return err
		}
		if err := fn(rec); err != nil {
			return fmt.Errorf("eventlog: scan seq %d: %w", rec.Seq, err)
		}
		return nil
	})
}

// Verify scans the whole log and returns the number of records and the
// hash of the last one. On damage it returns what verified before it
// along with Scan's error.
func (r *Reader) Verify() (count uint64, last [32]byte, err error) {
	err = r.Scan(func(rec Record) error {
		count++
		last = rec.Hash
		return nil
	})
	return count, last, err
}
