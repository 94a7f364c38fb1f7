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
	return r.ScanWith(&ScanOptions{Tail: TailWriting}, fn)
}

// ScanWith is [Reader.Scan] with options: opts.Tail is the rule for the
// end of the last segment (Scan uses [TailWriting]; every other segment
// is scanned with [TailStrict]), and with opts.OnDamage set the scan
// reports each damaged record there and goes on past it (see
// [ScanOptions]), calling fn for every good record. The damage of a scan
// is reported after its last record, once Scan has ruled out a false gap
// from a live writer's roll.
func (r *Reader) ScanWith(opts *ScanOptions, fn func(Record) error) error {
	var delivered uint64 // seq of the last record passed to fn
	for attempt := 1; ; attempt++ {
		before, err := ListSegments(r.dir)
		if err != nil {
			return fmt.Errorf("eventlog: scan: %w", err)
		}
		var damage []*SegmentError
		o := ScanOptions{Tail: opts.tail()}
		if opts.continues() {
			o.OnDamage = func(se *SegmentError) error {
				damage = append(damage, se)
				return nil
			}
		}
		err = r.scanOnce(before, &o, func(rec Record) error {
			if rec.Seq <= delivered {
				return nil // verified again, passed on by an earlier attempt
			}
			delivered = rec.Seq
			return fn(rec)
		})
		retry := err != nil && structural(err)
		for _, se := range damage {
			retry = retry || structural(se)
		}
		if retry && attempt < maxScans {
			after, lerr := ListSegments(r.dir)
			if lerr == nil && !sameSegments(before, after) {
				continue
			}
		}
		for _, se := range damage {
			if err := opts.OnDamage(se); err != nil {
				return err
			}
		}
		return err
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

func sameSegments(a, b []Segment) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Path != b[i].Path {
			return false
		}
	}
	return true
}

func (r *Reader) scanOnce(segs []Segment, opts *ScanOptions, fn func(Record) error) error {
	var c Chain
	for i, seg := range segs {
		data, err := os.ReadFile(seg.Path)
		if err != nil {
			return fmt.Errorf("eventlog: scan: %w", err)
		}
		o := *opts
		if i < len(segs)-1 {
			o.Tail = TailStrict
		}
		_, err = ScanEvents(seg, data, &c, &o, func(rec Record) error {
			if err := fn(rec); err != nil {
				return fmt.Errorf("eventlog: scan seq %d: %w", rec.Seq, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return c.Finish(opts)
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

// PlainReader reads a plain log's directory (see [Plain]) without opening
// it: like [Reader] it never repairs, takes no lock and writes nothing, so
// it can run beside a live server. A PlainReader holds no resources and is
// safe for concurrent use.
type PlainReader struct {
	dir string
}

// OpenPlainReader returns a PlainReader for the plain-log directory dir.
// It fails if dir does not exist or is not a directory.
func OpenPlainReader(dir string) (*PlainReader, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("eventlog: open plain reader: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("eventlog: open plain reader: %s is not a directory", dir)
	}
	return &PlainReader{dir: dir}, nil
}

// Scan calls fn for every good entry, in order, from the first segment on
// (a plain log's front may be truncated, so it may start above 1). It
// checks each entry's checksum and that the segments join up. opts is as
// for [Reader.ScanWith]: opts.Tail is the rule for the last segment, and
// with opts.OnDamage set damage is reported there as it is found and the
// scan goes on. A segment file that a live server's front truncation
// removed during the scan is skipped. An error from fn stops the scan and
// is returned wrapped.
func (r *PlainReader) Scan(opts *ScanOptions, fn func(index uint64, data []byte) error) error {
	segs, err := ListSegments(r.dir)
	if err != nil {
		return fmt.Errorf("eventlog: scan: %w", err)
	}
	var c Chain
	for i, seg := range segs {
		data, err := os.ReadFile(seg.Path)
		if errors.Is(err, os.ErrNotExist) && i < len(segs)-1 {
			c = Chain{} // truncated away meanwhile: start again at the next one
			continue
		}
		if err != nil {
			return fmt.Errorf("eventlog: scan: %w", err)
		}
		o := ScanOptions{Tail: opts.tail()}
		if opts != nil {
			o.OnDamage = opts.OnDamage
		}
		if i < len(segs)-1 {
			o.Tail = TailStrict
		}
		_, err = ScanPlain(seg, data, &c, &o, func(index uint64, data []byte) error {
			if err := fn(index, data); err != nil {
				return fmt.Errorf("eventlog: scan index %d: %w", index, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return c.Finish(opts)
}
