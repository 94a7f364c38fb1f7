package backup

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/conclave/conclave/eventlog"
)

// This file parses the on-disk formats of package eventlog read-only, from
// bytes already in memory: the segment files of tidwall/wal (Binary format:
// frames uvarint(len) || payload), event-log records (through
// eventlog.DecodeRecord), history entries (crc32c u32 BE || data) and
// snapshot files. eventlog's own parsers work on directories; backup needs
// them on a copy of a segment that a live server may be extending, and on
// entries of an archive.

const (
	segmentNameLen = 20
	// recordOverhead is the size of an event record with empty fields:
	// version, seq, time, prev, three length fields and the crc.
	recordOverhead = 1 + 8 + 8 + 32 + 2 + 2 + 4 + 4
	crcLen         = 4

	snapMagic     = "CNSNAP1\n"
	snapHeaderLen = len(snapMagic) + 4 + 8 + 32 + 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segment is one segment file of a wal directory, named by the 20-digit,
// zero-padded index of its first entry.
type segment struct {
	index uint64
	name  string
	path  string
}

func segmentName(index uint64) string { return fmt.Sprintf("%0*d", segmentNameLen, index) }

// parseSegmentName returns the index a segment file name stands for.
func parseSegmentName(name string) (uint64, bool) {
	if len(name) != segmentNameLen {
		return 0, false
	}
	index, err := strconv.ParseUint(name, 10, 64)
	return index, err == nil && index > 0
}

// listSegments returns the segment files of dir in index order, with the
// naming rule of tidwall/wal (and eventlog). Other files (*.broken copies,
// *.START and *.END of a truncation) are not segments.
func listSegments(dir string) ([]segment, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []segment
	for _, de := range des {
		index, ok := parseSegmentName(de.Name())
		if !ok || de.IsDir() {
			continue
		}
		segs = append(segs, segment{index: index, name: de.Name(), path: filepath.Join(dir, de.Name())})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].index < segs[j].index })
	return segs, nil
}

// hasTruncationFiles reports whether dir holds the .START or .END file of a
// tidwall/wal truncation in progress or interrupted.
func hasTruncationFiles(dir string) (bool, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, de := range des {
		if n := de.Name(); strings.HasSuffix(n, ".START") || strings.HasSuffix(n, ".END") {
			return true, nil
		}
	}
	return false, nil
}

// errIncomplete marks a frame that runs past the end of the bytes read: a
// write in progress or torn by a crash.
var errIncomplete = errors.New("incomplete frame")

// nextFrame parses the frame at the front of b. It never reads past b.
func nextFrame(b []byte) (payload []byte, n int, err error) {
	size, hn := binary.Uvarint(b)
	switch {
	case hn == 0:
		return nil, 0, errIncomplete
	case hn < 0:
		return nil, 0, fmt.Errorf("%w: frame length overflows", eventlog.ErrCorrupt)
	}
	if size > uint64(len(b)-hn) {
		return nil, 0, errIncomplete
	}
	return b[hn : hn+int(size)], hn + int(size), nil
}

// damageError locates damage in a segment: "events/00000000000000000001:
// seq 17 at offset 3456: eventlog: checksum mismatch".
type damageError struct {
	log     string // "events" or "history"
	segment string
	index   uint64 // seq or history index of the damaged entry
	offset  int
	err     error
}

func (e *damageError) Error() string {
	what := "seq"
	if e.log == "history" {
		what = "index"
	}
	return fmt.Sprintf("%s/%s: %s %d at offset %d: %v", e.log, e.segment, what, e.index, e.offset, e.err)
}

func (e *damageError) Unwrap() error { return e.err }

// chain is the position of an event-log scan: the seq the next record
// must carry and the hash its Prev must equal.
type chain struct {
	next uint64
	prev [32]byte
}

// scanEvents checks the frames of one event-log segment, data, against c
// and advances c past every valid record. It returns the length of the
// valid prefix.
//
// With tail set (the last segment of a live log), a record still being
// written ends the segment: an incomplete frame, or a frame failing its
// checksum, is cut off when no valid record follows it at any byte offset
// (the rule of eventlog's repair). Otherwise, and for any record whose
// checksum holds but whose seq, chain or format is wrong, scanEvents
// returns a *damageError. visit, if not nil, sees each valid record.
func scanEvents(seg segment, data []byte, c *chain, tail bool, visit func(eventlog.Record) error) (int, error) {
	off := 0
	for off < len(data) {
		payload, n, err := nextFrame(data[off:])
		var rec eventlog.Record
		cuttable := errors.Is(err, errIncomplete)
		if err == nil {
			rec, err = eventlog.DecodeRecord(payload)
			// A record whose checksum holds was written as it is: not a
			// torn write.
			cuttable = err != nil && !errors.Is(err, eventlog.ErrNewerFormat) && !crcOK(payload)
		}
		if err == nil && rec.Seq != c.next {
			err = fmt.Errorf("%w: record says seq %d", eventlog.ErrCorrupt, rec.Seq)
		}
		if err == nil && rec.Prev != c.prev {
			err = fmt.Errorf("%w: prev %x…, want %x…", eventlog.ErrChain, rec.Prev[:6], c.prev[:6])
		}
		if err != nil {
			if tail && cuttable && !validRecordAfter(data, off, c.next) {
				return off, nil
			}
			if errors.Is(err, errIncomplete) {
				err = fmt.Errorf("%w: incomplete frame of %d bytes", eventlog.ErrCorrupt, len(data)-off)
			}
			return off, &damageError{log: "events", segment: seg.name, index: c.next, offset: off, err: err}
		}
		if visit != nil {
			if err := visit(rec); err != nil {
				return off, err
			}
		}
		c.next++
		c.prev = rec.Hash
		off += n
	}
	return off, nil
}

// validRecordAfter reports whether a well-formed record with seq at least
// next starts at any byte offset after off: then the bad frame at off is
// damage in the middle of the log, not a torn tail.
func validRecordAfter(data []byte, off int, next uint64) bool {
	maxSeq := next + uint64(len(data)-off)/recordOverhead + 1
	for o := off + 1; o < len(data); o++ {
		payload, _, err := nextFrame(data[o:])
		if err != nil || len(payload) < recordOverhead {
			continue
		}
		v, seq := payload[0], binary.BigEndian.Uint64(payload[1:])
		if v == 0 || v > eventlog.FormatVersion || seq < next || seq > maxSeq {
			continue
		}
		if _, err := eventlog.DecodeRecord(payload); err == nil {
			return true
		}
	}
	return false
}

func crcOK(b []byte) bool {
	return len(b) >= 1+crcLen &&
		crc32.Checksum(b[:len(b)-crcLen], castagnoli) == binary.BigEndian.Uint32(b[len(b)-crcLen:])
}

// plainData checks a history entry (crc32c(data) u32 BE || data).
func plainData(payload []byte) ([]byte, error) {
	if len(payload) < crcLen {
		return nil, fmt.Errorf("%w: entry is %d bytes", eventlog.ErrCorrupt, len(payload))
	}
	data := payload[crcLen:]
	if got, want := crc32.Checksum(data, castagnoli), binary.BigEndian.Uint32(payload); got != want {
		return nil, fmt.Errorf("%w: entry crc %08x, computed %08x", eventlog.ErrChecksum, want, got)
	}
	return data, nil
}

// scanHistory checks the frames of one history segment whose first entry
// has index first. It returns the length of the valid prefix and the
// number of entries in it. With tail set, a bad entry that no valid entry
// follows (following frames, as eventlog's repair does) ends the segment;
// otherwise it is a *damageError.
func scanHistory(seg segment, data []byte, first uint64, tail bool) (int, uint64, error) {
	off, count := 0, uint64(0)
	for off < len(data) {
		payload, n, err := nextFrame(data[off:])
		if err == nil {
			_, err = plainData(payload)
		}
		if err != nil {
			if tail && !validEntryAfter(data, off) {
				return off, count, nil
			}
			if errors.Is(err, errIncomplete) {
				err = fmt.Errorf("%w: incomplete frame of %d bytes", eventlog.ErrCorrupt, len(data)-off)
			}
			return off, count, &damageError{log: "history", segment: seg.name, index: first + count, offset: off, err: err}
		}
		count++
		off += n
	}
	return off, count, nil
}

// validEntryAfter reports whether the frame at off is complete and a
// following frame holds a valid entry.
func validEntryAfter(data []byte, off int) bool {
	_, n, err := nextFrame(data[off:])
	if err != nil {
		return false
	}
	for o := off + n; o < len(data); o += n {
		var payload []byte
		if payload, n, err = nextFrame(data[o:]); err != nil {
			return false
		}
		if _, err := plainData(payload); err == nil {
			return true
		}
	}
	return false
}

// parseSnapshotName returns the seq a snapshot file name stands for.
func parseSnapshotName(name string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, "snap-")
	if !ok {
		return 0, false
	}
	if digits, ok = strings.CutSuffix(digits, ".zst"); !ok || len(digits) != 20 {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil
}

// decodeSnapshot decodes a snapshot file's bytes (format in eventlog's
// package documentation) and checks its magic, payload CRC, zstd frame
// checksum and that its seq is wantSeq.
func decodeSnapshot(b []byte, wantSeq uint64) (eventlog.Snapshot, error) {
	dec, err := zstd.NewReader(bytes.NewReader(b), zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxMemory(eventlog.MaxSnapshotSize+1<<20))
	if err != nil {
		return eventlog.Snapshot{}, err
	}
	defer dec.Close()
	var hdr [snapHeaderLen]byte
	if _, err := io.ReadFull(dec, hdr[:]); err != nil {
		return eventlog.Snapshot{}, fmt.Errorf("header: %w", err)
	}
	if string(hdr[:len(snapMagic)]) != snapMagic {
		return eventlog.Snapshot{}, errors.New("not a snapshot (bad magic)")
	}
	p := hdr[len(snapMagic):]
	s := eventlog.Snapshot{Schema: binary.BigEndian.Uint32(p), Seq: binary.BigEndian.Uint64(p[4:])}
	copy(s.Hash[:], p[12:44])
	n := binary.BigEndian.Uint64(p[44:])
	if s.Seq != wantSeq {
		return eventlog.Snapshot{}, fmt.Errorf("header says seq %d, file name %d", s.Seq, wantSeq)
	}
	if n > eventlog.MaxSnapshotSize {
		return eventlog.Snapshot{}, fmt.Errorf("payload length %d exceeds %d", n, eventlog.MaxSnapshotSize)
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(dec, int64(n))); err != nil {
		return eventlog.Snapshot{}, fmt.Errorf("payload: %w", err)
	}
	if uint64(buf.Len()) != n {
		return eventlog.Snapshot{}, fmt.Errorf("payload: %w", io.ErrUnexpectedEOF)
	}
	var crc [crcLen]byte
	if _, err := io.ReadFull(dec, crc[:]); err != nil {
		return eventlog.Snapshot{}, fmt.Errorf("payload crc: %w", err)
	}
	if got, want := crc32.Checksum(buf.Bytes(), castagnoli), binary.BigEndian.Uint32(crc[:]); got != want {
		return eventlog.Snapshot{}, fmt.Errorf("%w: payload crc %08x, computed %08x", eventlog.ErrChecksum, want, got)
	}
	if k, err := io.Copy(io.Discard, dec); err != nil {
		return eventlog.Snapshot{}, fmt.Errorf("trailer: %w", err)
	} else if k != 0 {
		return eventlog.Snapshot{}, fmt.Errorf("%d bytes after the payload", k)
	}
	s.Data = buf.Bytes()
	return s, nil
}
