package eventlog

import (
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
func (r *Reader) Scan(fn func(Record) error) error {
	segs, err := listSegments(r.dir)
	if err != nil {
		return fmt.Errorf("eventlog: scan: %w", err)
	}
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
