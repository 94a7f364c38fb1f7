package eventlog

import (
	"errors"
	"fmt"
)

// This file holds the byte-level scanners of both log formats: the same
// code reads segments for [Reader], [PlainReader] and any caller that
// holds a segment's bytes itself (backup reads a copy of a segment a live
// server may be extending, and the entries of an archive).

// TailRule says how a scan treats bad bytes at the end of a segment that
// no valid entry follows.
type TailRule uint8

const (
	// TailStrict: every byte must be a valid entry. For a segment other
	// than the last one, and for a copy that was cut to its valid length.
	TailStrict TailRule = iota
	// TailWriting: an incomplete last frame is a write in progress and
	// ends the segment quietly. For the last segment of a log a server
	// may be writing ([Reader]).
	TailWriting
	// TailTorn: entries failing their checksum end the segment quietly as
	// well, exactly what [Open]'s repair would cut. For taking a copy of
	// a live or crashed log that a server will open.
	TailTorn
)

// ScanOptions configure [ScanEvents], [ScanPlain] and the readers' scans.
// A nil *ScanOptions is the zero value.
type ScanOptions struct {
	// Tail is the rule for the end of the segment scanned (for the
	// readers: of the last segment). Default TailStrict.
	Tail TailRule
	// OnDamage, if set, is called for each damaged entry, and the scan
	// goes on after it instead of stopping. Each call names one entry, or
	// a run of entries (SegmentError.Last) that a damaged frame hid, with
	// its segment file and byte offset. After damage in an event log the
	// next good record's Prev is not checked (the hash it links to is
	// unknown); the chain resumes from it. A frame that cannot be read
	// hides the entries after it up to the next one found intact (for the
	// event log, a record at a later byte offset carrying a plausible seq;
	// for a plain log, the next segment). An error OnDamage returns stops
	// the scan and is returned.
	OnDamage func(*SegmentError) error
}

func (o *ScanOptions) tail() TailRule {
	if o == nil {
		return TailStrict
	}
	return o.Tail
}

// report hands damage to OnDamage, or returns it when there is none.
func (o *ScanOptions) report(se *SegmentError) error {
	if o == nil || o.OnDamage == nil {
		return se
	}
	return o.OnDamage(se)
}

func (o *ScanOptions) continues() bool { return o != nil && o.OnDamage != nil }

// Chain is the position of an event-log scan: the seq the next record must
// carry and the hash its Prev must equal. Start a scan from seq 1 with the
// zero Chain (Next 0 counts as 1).
type Chain struct {
	Next uint64   // seq the next record must carry
	Prev [32]byte // hash the next record's Prev must equal
	// Unlinked means Prev is unknown (after damage, or a scan that starts
	// in the middle of a log without a trusted hash): the next record's
	// Prev is taken as it is.
	Unlinked bool

	// lost is damage that hid the rest of a segment: the next segment
	// tells how many seqs it covered.
	lost *SegmentError
}

// check decodes payload as the record at c.Next and checks it against c.
// It returns the bare cause; the caller locates it.
func (c *Chain) check(payload []byte) (Record, error) {
	rec, err := DecodeRecord(payload)
	if err == nil && rec.Seq != c.Next {
		err = fmt.Errorf("%w: record says seq %d", ErrCorrupt, rec.Seq)
	}
	if err == nil && !c.Unlinked && rec.Prev != c.Prev {
		err = fmt.Errorf("%w: prev %x, want %x", ErrChain, rec.Prev[:6], c.Prev[:6])
	}
	return rec, err
}

func (c *Chain) advance(rec Record) {
	c.Next++
	c.Prev, c.Unlinked = rec.Hash, false
}

// join checks that seg starts where the scan stands. On a gap or an
// overlap it reports damage (or returns it) and moves c to seg's start.
func (c *Chain) join(seg Segment, opts *ScanOptions) error {
	lost := c.lost
	c.lost = nil
	if seg.Index == c.Next {
		return nil
	}
	if lost != nil && seg.Index > lost.Seq {
		// The unreadable rest of the previous segment held the seqs up
		// to where this one starts.
		if seg.Index-1 > lost.Seq {
			lost.Last = seg.Index - 1
		}
		c.Next, c.Unlinked = seg.Index, true
		return opts.report(lost)
	}
	if lost != nil {
		if err := opts.report(lost); err != nil {
			return err
		}
	}
	se := &SegmentError{Segment: seg.Name, Seq: c.Next, Offset: 0,
		Err: fmt.Errorf("%w: segment starts at index %d, want %d", ErrCorrupt, seg.Index, c.Next)}
	if seg.Index > c.Next+1 {
		se.Last = seg.Index - 1
	}
	c.Next, c.Unlinked = seg.Index, true
	return opts.report(se)
}

// Finish reports damage a scan with OnDamage still holds at its end: the
// unreadable rest of the last segment scanned. Call it once after the last
// [ScanEvents] of a scan that sets OnDamage.
func (c *Chain) Finish(opts *ScanOptions) error {
	lost := c.lost
	c.lost = nil
	if lost == nil {
		return nil
	}
	return opts.report(lost)
}

// ScanEvents scans data, the bytes of event-log segment seg, checking
// each record's checksum and format, that its seq is c.Next and that its
// Prev is c.Prev, and advances c past it; visit, if not nil, sees each
// good record. A segment that does not start at c.Next is damage too (a
// gap or overlap between segments).
//
// It returns the length of the prefix of data it read: len(data), or
// where a torn tail that opts.Tail allows begins, or where the damage
// that stopped it begins. Damage is a [*SegmentError] naming seg, the seq
// and the byte offset, wrapping [ErrCorrupt], [ErrChecksum], [ErrChain]
// or [ErrNewerFormat]; with opts.OnDamage set it is reported there and
// the scan goes on. An error from visit stops the scan and is returned
// as it is.
func ScanEvents(seg Segment, data []byte, c *Chain, opts *ScanOptions, visit func(Record) error) (int, error) {
	if c.Next == 0 {
		c.Next = 1
	}
	if err := c.join(seg, opts); err != nil {
		return 0, err
	}
	tail := opts.tail()
	off := 0
	for off < len(data) {
		payload, n, err := nextFrame(data[off:])
		var rec Record
		if err == nil {
			rec, err = c.check(payload)
		}
		if err == nil {
			if visit != nil {
				if err := visit(rec); err != nil {
					return off, err
				}
			}
			c.advance(rec)
			off += n
			continue
		}
		// A record whose checksum holds was written as it is: it is not
		// a torn write, and its frame can be trusted to find the next.
		whole := n > 0 && (crcOK(payload) || errors.Is(err, ErrNewerFormat))
		if (tail == TailTorn && !whole || tail == TailWriting && errors.Is(err, errIncomplete)) && !logCodec.validAfter(data, off, c.Next) {
			return off, nil
		}
		if errors.Is(err, errIncomplete) {
			err = fmt.Errorf("%w: incomplete frame of %d bytes", ErrCorrupt, len(data)-off)
		}
		se := &SegmentError{Segment: seg.Name, Seq: c.Next, Offset: int64(off), Err: err}
		if !opts.continues() {
			return off, se
		}
		next, seq := off+n, c.Next+1
		if !whole {
			// The frame's length may be damaged too: look for the next
			// good record at any byte offset.
			var ok bool
			if next, seq, ok = nextRecord(data, off, c.Next); !ok {
				// The rest of the segment is unreadable; the next
				// segment's start says how many seqs it held.
				c.lost = se
				return len(data), nil
			}
			if seq > c.Next+1 {
				se.Last = seq - 1
			}
		}
		if err := opts.report(se); err != nil {
			return off, err
		}
		c.Next, c.Unlinked = seq, true
		off = next
	}
	return off, nil
}

// nextRecord finds the first well-formed record with a seq of at least
// next that starts after off, and returns its offset and seq.
func nextRecord(data []byte, off int, next uint64) (int, uint64, bool) {
	maxSeq := next + uint64(len(data)-off)/recordOverhead + 1
	for o := off + 1; o < len(data); o++ {
		payload, _, err := nextFrame(data[o:])
		if err != nil {
			continue
		}
		v, seq, ok := peekSeq(payload)
		if !ok || v == 0 || v > FormatVersion || seq < next || seq > maxSeq {
			continue
		}
		if _, err := DecodeRecord(payload); err == nil {
			return o, seq, true
		}
	}
	return 0, 0, false
}

// ScanPlain scans data, the bytes of segment seg of a plain log ([Plain]:
// entries crc32c(data) u32 BE || data), checking each entry's checksum and
// that seg starts at c.Next (a zero c.Next accepts any start: a plain log's
// front may have been truncated), and advances c.Next past each entry,
// damaged ones included; Prev is not used. visit, if not nil, sees each
// good entry's index and data (which aliases data).
//
// It returns the length of the prefix of data it read, as [ScanEvents]
// does. Damage is a [*SegmentError] naming seg, the index and the byte
// offset; with opts.OnDamage set it is reported there and the scan goes on:
// past an entry whose frame is intact, or to the next segment after a
// frame that cannot be read. An error from visit stops the scan and is
// returned as it is.
func ScanPlain(seg Segment, data []byte, c *Chain, opts *ScanOptions, visit func(index uint64, data []byte) error) (int, error) {
	if c.Next == 0 {
		c.Next = seg.Index
	}
	if err := c.join(seg, opts); err != nil {
		return 0, err
	}
	tail := opts.tail()
	off := 0
	for off < len(data) {
		payload, n, err := nextFrame(data[off:])
		var entry []byte
		if err == nil {
			entry, err = plainData(payload)
		}
		if err == nil {
			if visit != nil {
				if err := visit(c.Next, entry); err != nil {
					return off, err
				}
			}
			c.Next++
			off += n
			continue
		}
		framed := n > 0
		if (tail == TailTorn || tail == TailWriting && !framed) && !plainCodec.validAfter(data, off, c.Next) {
			return off, nil
		}
		if errors.Is(err, errIncomplete) {
			err = fmt.Errorf("%w: incomplete frame of %d bytes", ErrCorrupt, len(data)-off)
		}
		se := &SegmentError{Segment: seg.Name, Seq: c.Next, Offset: int64(off), Err: err}
		if !framed && opts.continues() {
			c.lost = se
			return len(data), nil
		}
		if err := opts.report(se); err != nil {
			return off, err
		}
		c.Next++
		off += n
	}
	return off, nil
}
