package eventlog

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers branch on them with [errors.Is]; the errors
// actually returned wrap them with the operation, and damage found on disk
// comes wrapped in a [*SegmentError] that names the file and position.
var (
	// ErrCorrupt reports damage the log will not repair by itself: a bad
	// record followed by good ones, damage in a segment other than the last,
	// a malformed record, a gap between segments, or a torn tail that
	// [Reader] finds outside the very end of the log.
	ErrCorrupt = errors.New("eventlog: corrupt log")
	// ErrChecksum reports a record or payload whose CRC-32C does not match.
	ErrChecksum = errors.New("eventlog: checksum mismatch")
	// ErrChain reports a record whose Prev is not the hash of the record
	// before it, or a snapshot that does not link to the log.
	ErrChain = errors.New("eventlog: hash chain broken")
	// ErrNotFound reports a sequence number or index outside the log.
	ErrNotFound = errors.New("eventlog: not found")
	// ErrNewerFormat reports a record written by a newer format version
	// than [FormatVersion]. The log refuses to repair or append past it.
	ErrNewerFormat = errors.New("eventlog: record written by a newer format version")
	// ErrClosed reports a call on a closed [Log] or [Plain].
	ErrClosed = errors.New("eventlog: log closed")
	// ErrTooLarge reports an entry whose actor, type or data exceeds the
	// record format's length limits (see [MaxDataLen]).
	ErrTooLarge = errors.New("eventlog: entry too large")
)

// SegmentError locates damage in a segment file. Err wraps one or more of
// the sentinels ([ErrCorrupt], [ErrChecksum], [ErrChain], [ErrNewerFormat]).
type SegmentError struct {
	Segment string // segment file name, e.g. "00000000000000000001"
	Seq     uint64 // sequence number (wal index) of the damaged record
	// Last is the last seq of a run of damaged records that one unreadable
	// frame or a gap between segments hid (reported by a scan that goes
	// on past damage, see [ScanOptions]); 0 when the damage is Seq alone.
	Last   uint64
	Offset int64 // byte offset of the record's frame in the segment, -1 if unknown
	Err    error
}

func (e *SegmentError) Error() string {
	seq := fmt.Sprintf("seq %d", e.Seq)
	if e.Last > e.Seq {
		seq = fmt.Sprintf("seq %d-%d", e.Seq, e.Last)
	}
	if e.Offset >= 0 {
		return fmt.Sprintf("%v (segment %s, %s, offset %d)", e.Err, e.Segment, seq, e.Offset)
	}
	return fmt.Sprintf("%v (segment %s, %s)", e.Err, e.Segment, seq)
}

func (e *SegmentError) Unwrap() error { return e.Err }
