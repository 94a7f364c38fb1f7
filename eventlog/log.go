package eventlog

import (
	"errors"
	"fmt"
	"os"
	"sync"
)

// Log is the event log: an append-only sequence of hash-chained records in
// a tidwall/wal directory. Open it with [Open] and always Close it.
//
// A Log is safe for concurrent use; one mutex serialises every call (the
// server appends from a single writer goroutine anyway). [Log.Replay]
// holds the mutex only while it reads a segment file, not while it calls
// its callback.
type Log struct {
	dir string

	// mu guards the fields below and every use of s.
	mu       sync.Mutex
	s        store
	lastSeq  uint64
	lastHash [32]byte
	known    bool // lastSeq and lastHash have been read from disk
}

// logCodec is the event log's payload format for the repair code.
var logCodec = codec{
	newCheck: func() checkFunc {
		var prev [32]byte
		have := false
		return func(payload []byte, index uint64) (bool, error) {
			rec, err := DecodeRecord(payload)
			if err != nil {
				// A record whose checksum holds was written as it is:
				// not a torn write, so never cut.
				return errors.Is(err, ErrNewerFormat) || crcOK(payload), err
			}
			if rec.Seq != index {
				return true, fmt.Errorf("%w: record says seq %d", ErrCorrupt, rec.Seq)
			}
			if have && rec.Prev != prev {
				return true, fmt.Errorf("%w: %w: prev %x, want %x", ErrCorrupt, ErrChain, rec.Prev[:6], prev[:6])
			}
			prev, have = rec.Hash, true
			return false, nil
		}
	},
	validAfter: func(data []byte, off int, index uint64) bool {
		// Look for a well-formed record at every byte offset after the
		// bad one: a flipped bit in a length field must not make the
		// records after it look like a torn tail. The version and seq
		// filter keeps this linear in practice.
		maxSeq := index + uint64(len(data)-off)/recordOverhead + 1
		for o := off + 1; o < len(data); o++ {
			payload, _, err := nextFrame(data[o:])
			if err != nil {
				continue
			}
			v, seq, ok := peekSeq(payload)
			if !ok || v == 0 || v > FormatVersion || seq < index || seq > maxSeq {
				continue
			}
			if _, err := DecodeRecord(payload); err == nil {
				return true
			}
		}
		return false
	},
}

// Open opens the event log in dir, creating dir and an empty log if
// needed.
//
// Before opening, Open repairs a torn tail: if the last segment ends in an
// incomplete frame, a zero-filled region or records failing their
// checksum, and no valid record follows, the segment is cut back to its
// last valid record. The cut bytes are kept in <segment>.broken, file and
// directory are fsynced and a warning reports the bytes cut. Any other
// damage — in an earlier segment, a bad record followed by good ones, a
// record from a newer format — is refused with an error wrapping
// [ErrCorrupt] (or [ErrNewerFormat], [ErrChain]) in a [*SegmentError]
// naming the segment and seq. Open verifies only the last segment and the
// last record; [Log.Replay] verifies the rest.
func Open(dir string, opts *Options) (*Log, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	o.KeepDamaged = false // the event log is authority: damage stops it
	l := &Log{dir: dir}
	l.s = store{dir: dir, opts: o, codec: logCodec, onOpen: l.onOpenLocked}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.s.open(false, 0); err != nil {
		return nil, fmt.Errorf("eventlog: open %s: %w", dir, err)
	}
	return l, nil
}

// onOpenLocked reads the last record after each wal.Open. The first time
// it sets lastSeq and lastHash; after a recovery it checks that the disk
// still ends where memory says.
func (l *Log) onOpenLocked(ts tailScan) error {
	first, last, err := l.s.firstLast()
	if err != nil {
		return err
	}
	if first != 1 {
		return fmt.Errorf("%w: event log starts at seq %d, want 1", ErrCorrupt, first)
	}
	var hash [32]byte
	if last > 0 {
		payload := ts.last
		if ts.count == 0 {
			// The last segment is empty: the last record ends the one
			// before it.
			if payload, err = l.s.read(last); err != nil {
				return err
			}
		}
		rec, err := DecodeRecord(payload)
		if err == nil && rec.Seq != last {
			err = fmt.Errorf("%w: record says seq %d", ErrCorrupt, rec.Seq)
		}
		switch {
		case err == nil:
			hash = rec.Hash
		case ts.count > 0 && ts.lastDamaged && last == l.s.opts.TrustedSeq:
			hash = l.s.opts.TrustedHash // damaged, but the snapshot vouches for it
		default:
			return l.s.segmentError(last, err)
		}
	}
	if !l.known {
		l.lastSeq, l.lastHash, l.known = last, hash, true
		return nil
	}
	if last != l.lastSeq || hash != l.lastHash {
		return fmt.Errorf("%w: log ends at seq %d after recovery, want seq %d with the same hash", ErrCorrupt, last, l.lastSeq)
	}
	return nil
}

// Append appends entries as consecutive records, chained to the last one,
// with one wal WriteBatch: one write and, unless NoSync, one fsync, plus a
// directory fsync if a segment file was created. It returns the records as
// written (Seq, Prev and Hash filled in).
//
// If anything fails, no entry of the batch is appended: the log closes the
// wal, cuts whatever reached the disk beyond the last good record, reopens,
// and returns the error; LastSeq and LastHash are unchanged, and a later
// Append works again once the cause is gone. A failed fsync is never
// retried as if it had succeeded. Append returns an error wrapping
// [ErrTooLarge] for an oversized entry (before writing anything) and
// [ErrClosed] after Close.
func (l *Log) Append(entries []Entry) ([]Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s.closed {
		return nil, ErrClosed
	}
	if len(entries) == 0 {
		return nil, nil
	}
	size := 0
	for i := range entries {
		e := &entries[i]
		if err := checkSizes(e.Actor, e.Type, len(e.Data)); err != nil {
			return nil, fmt.Errorf("eventlog: append entry %d: %w", i, err)
		}
		size += encodedLen(len(e.Actor), len(e.Type), len(e.Data))
	}
	// One buffer for the whole batch; the returned records' Data point
	// into it, so it is not reused once handed out.
	buf := make([]byte, 0, size)
	recs := make([]Record, len(entries))
	payloads := make([][]byte, len(entries))
	prev := l.lastHash
	for i := range entries {
		e := &entries[i]
		r := &recs[i]
		*r = Record{Version: FormatVersion, Seq: l.lastSeq + 1 + uint64(i), TimeMs: e.TimeMs,
			Actor: e.Actor, Type: e.Type, Data: e.Data, Prev: prev}
		start := len(buf)
		var dataOff int
		buf, dataOff = appendRecord(buf, r)
		payloads[i] = buf[start:len(buf):len(buf)]
		r.Data = buf[dataOff : dataOff+len(e.Data) : dataOff+len(e.Data)]
		r.Hash = sha256Sum(payloads[i])
		prev = r.Hash
	}
	if err := l.s.writeBatch(l.lastSeq+1, payloads); err != nil {
		return nil, fmt.Errorf("eventlog: append seq %d-%d: %w", l.lastSeq+1, l.lastSeq+uint64(len(entries)), err)
	}
	l.lastSeq += uint64(len(entries))
	l.lastHash = prev
	return recs, nil
}

// LastSeq returns the sequence number of the last record, 0 if the log is
// empty.
func (l *Log) LastSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastSeq
}

// LastHash returns the hash of the last record, zero if the log is empty.
func (l *Log) LastHash() [32]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastHash
}

// Dir returns the directory the log was opened in.
func (l *Log) Dir() string { return l.dir }

// Read returns the record with sequence number seq, checking its checksum
// and seq but not the chain. It returns an error wrapping [ErrNotFound]
// for a seq outside 1..LastSeq, a [*SegmentError] for damage, and
// [ErrClosed] after Close.
func (l *Log) Read(seq uint64) (Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s.closed {
		return Record{}, ErrClosed
	}
	if seq == 0 || seq > l.lastSeq {
		return Record{}, fmt.Errorf("%w: seq %d, log holds 1-%d", ErrNotFound, seq, l.lastSeq)
	}
	payload, err := l.s.read(seq)
	if err != nil {
		return Record{}, err
	}
	rec, err := DecodeRecord(payload)
	if err == nil && rec.Seq != seq {
		err = fmt.Errorf("%w: record says seq %d", ErrCorrupt, rec.Seq)
	}
	if err != nil {
		return Record{}, l.s.segmentError(seq, err)
	}
	return rec, nil
}

// Replay calls fn for every record with seq > after, in order, up to the
// last record at the time of the call. It verifies each record's checksum
// and format, that its seq is its position, and that its Prev equals the
// previous record's Hash; the first record's Prev must equal prevHash (the
// hash a snapshot recorded for seq after; zero when after is 0). When after
// is the last seq, prevHash must equal [Log.LastHash]; an after beyond the
// last seq (a snapshot newer than the log) is an error wrapping [ErrChain].
//
// Damage stops the replay with a [*SegmentError] naming the segment file
// and seq and wrapping [ErrCorrupt], [ErrChecksum], [ErrChain] or
// [ErrNewerFormat]. An error from fn stops it too and is returned wrapped.
// Replay reads the segment files itself (not through the wal) and holds
// the log's mutex only while reading a file, so fn may call l's methods.
func (l *Log) Replay(after uint64, prevHash [32]byte, fn func(Record) error) error {
	l.mu.Lock()
	if l.s.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	last, lastHash := l.lastSeq, l.lastHash
	segs, err := ListSegments(l.dir)
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("eventlog: replay: %w", err)
	}
	switch {
	case after > last:
		return fmt.Errorf("eventlog: replay: %w: snapshot at seq %d is beyond the log's last seq %d", ErrChain, after, last)
	case after == last:
		if after > 0 && prevHash != lastHash {
			return fmt.Errorf("eventlog: replay: %w: hash of seq %d is %x, snapshot says %x", ErrChain, after, lastHash[:6], prevHash[:6])
		}
		return nil
	}
	readSeg := func(seg Segment) ([]byte, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.s.closed {
			return nil, ErrClosed
		}
		b, err := os.ReadFile(seg.Path)
		if err != nil {
			return nil, fmt.Errorf("eventlog: replay: %w", err)
		}
		return b, nil
	}
	c := Chain{Next: after + 1, Prev: prevHash}
	return walk(segs, after+1, last, readSeg, func(seg Segment, off int, index uint64, payload []byte) error {
		rec, err := c.check(payload)
		if err != nil {
			return &SegmentError{Segment: seg.Name, Seq: index, Offset: int64(off), Err: err}
		}
		c.advance(rec)
		if err := fn(rec); err != nil {
			return fmt.Errorf("eventlog: replay seq %d: %w", rec.Seq, err)
		}
		return nil
	})
}

// Close syncs and closes the log. Later calls return [ErrClosed].
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.close()
}
