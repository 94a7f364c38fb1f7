package eventlog

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// FormatVersion is the record format version this package writes. A record
// with a greater version is refused with [ErrNewerFormat]; older versions
// remain readable forever.
const FormatVersion = 1

const (
	// MaxFieldLen is the longest Actor or Type a record can hold.
	MaxFieldLen = math.MaxUint16
	// MaxDataLen is the largest Data [Log.Append] accepts. The format could
	// hold 4 GiB; the limit keeps a single record far below segment and
	// memory sizes.
	MaxDataLen = 64 << 20

	// recordOverhead is the size of a version-1 record with empty fields:
	// version 1 + seq 8 + time 8 + prev 32 + 2 + 2 + 4 length fields + crc 4.
	recordOverhead = 1 + 8 + 8 + 32 + 2 + 2 + 4 + 4
	crcLen         = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// Entry is what a caller appends: [Log.Append] turns each Entry into a
// [Record] by assigning its sequence number and chaining its hash.
type Entry struct {
	TimeMs int64  // unix milliseconds
	Actor  string // "user/machine/session" or "server"
	Type   string // e.g. "user_registered"
	Data   []byte // opaque (JSON in practice)
}

// Record is one decoded event-log record.
type Record struct {
	Version uint8
	Seq     uint64 // 1-based, equal to the wal index
	TimeMs  int64
	Actor   string
	Type    string
	Data    []byte
	Prev    [32]byte // SHA-256 of the previous record's encoding; zero for seq 1
	Hash    [32]byte // SHA-256 of this record's encoding (computed, not stored)
}

func encodedLen(actor, typ, data int) int { return recordOverhead + actor + typ + data }

// checkSizes returns an error wrapping ErrTooLarge if a field exceeds what
// the format can hold.
func checkSizes(actor, typ string, dataLen int) error {
	switch {
	case len(actor) > MaxFieldLen:
		return fmt.Errorf("%w: actor is %d bytes, limit %d", ErrTooLarge, len(actor), MaxFieldLen)
	case len(typ) > MaxFieldLen:
		return fmt.Errorf("%w: type is %d bytes, limit %d", ErrTooLarge, len(typ), MaxFieldLen)
	case dataLen > MaxDataLen:
		return fmt.Errorf("%w: data is %d bytes, limit %d", ErrTooLarge, dataLen, MaxDataLen)
	}
	return nil
}

// appendRecord appends the encoding of r to dst and returns the extended
// slice and the offset of Data within it. r's sizes must have been checked.
// A zero r.Version is written as FormatVersion.
func appendRecord(dst []byte, r *Record) ([]byte, int) {
	start := len(dst)
	v := r.Version
	if v == 0 {
		v = FormatVersion
	}
	dst = append(dst, v)
	dst = binary.BigEndian.AppendUint64(dst, r.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.TimeMs))
	dst = append(dst, r.Prev[:]...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(r.Actor)))
	dst = append(dst, r.Actor...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(r.Type)))
	dst = append(dst, r.Type...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(r.Data)))
	dataOff := len(dst)
	dst = append(dst, r.Data...)
	dst = binary.BigEndian.AppendUint32(dst, crc32c(dst[start:]))
	return dst, dataOff
}

// EncodeRecord returns the binary encoding of r (see the package
// documentation for the layout). r.Hash is ignored; a zero r.Version is
// written as [FormatVersion]. EncodeRecord returns nil if Actor or Type is
// longer than [MaxFieldLen] or Data is longer than [MaxDataLen]; [Log.Append]
// rejects such entries with [ErrTooLarge] before encoding.
func EncodeRecord(r *Record) []byte {
	if checkSizes(r.Actor, r.Type, len(r.Data)) != nil {
		return nil
	}
	b, _ := appendRecord(make([]byte, 0, encodedLen(len(r.Actor), len(r.Type), len(r.Data))), r)
	return b
}

// DecodeRecord decodes one record and computes its Hash. It checks, in
// order: that b can hold a checksum (else [ErrCorrupt]), the CRC-32C in the
// last four bytes ([ErrChecksum]), the version byte (0 is [ErrCorrupt],
// above [FormatVersion] is [ErrNewerFormat]) and that the length fields
// account for every byte ([ErrCorrupt]). Data is a copy: b may be reused.
// DecodeRecord never panics, whatever b holds.
func DecodeRecord(b []byte) (Record, error) {
	// The checksum is checked before anything is parsed, so any damage to
	// a record reads as ErrChecksum and a flipped version byte is not
	// mistaken for a newer format. Every version keeps the CRC-32C of the
	// preceding bytes in the last four bytes and the version in the first.
	if len(b) < 1+crcLen {
		return Record{}, fmt.Errorf("%w: record is %d bytes", ErrCorrupt, len(b))
	}
	body := b[:len(b)-crcLen]
	if got, want := crc32c(body), binary.BigEndian.Uint32(b[len(b)-crcLen:]); got != want {
		return Record{}, fmt.Errorf("%w: record crc %08x, computed %08x", ErrChecksum, want, got)
	}
	r := Record{Version: b[0]}
	switch {
	case r.Version == 0:
		return Record{}, fmt.Errorf("%w: record version 0", ErrCorrupt)
	case r.Version > FormatVersion:
		return Record{}, fmt.Errorf("%w: version %d, this binary reads up to %d", ErrNewerFormat, r.Version, FormatVersion)
	}
	if len(b) < recordOverhead {
		return Record{}, fmt.Errorf("%w: record is %d bytes, minimum %d", ErrCorrupt, len(b), recordOverhead)
	}
	p := body[1:]
	r.Seq = binary.BigEndian.Uint64(p)
	r.TimeMs = int64(binary.BigEndian.Uint64(p[8:]))
	copy(r.Prev[:], p[16:48])
	p = p[48:]
	var (
		field []byte
		ok    bool
	)
	if field, p, ok = cutField(p, 2); !ok {
		return Record{}, fmt.Errorf("%w: actor length exceeds record", ErrCorrupt)
	}
	r.Actor = string(field)
	if field, p, ok = cutField(p, 2); !ok {
		return Record{}, fmt.Errorf("%w: type length exceeds record", ErrCorrupt)
	}
	r.Type = string(field)
	if field, p, ok = cutField(p, 4); !ok {
		return Record{}, fmt.Errorf("%w: data length exceeds record", ErrCorrupt)
	}
	if len(p) != 0 {
		return Record{}, fmt.Errorf("%w: %d stray bytes after data", ErrCorrupt, len(p))
	}
	if len(field) > 0 {
		r.Data = append([]byte(nil), field...)
	}
	r.Hash = sha256.Sum256(b)
	return r, nil
}

// cutField splits a length-prefixed field (a big-endian length of width 2
// or 4 bytes, then the bytes) off the front of p.
func cutField(p []byte, width int) (field, rest []byte, ok bool) {
	if len(p) < width {
		return nil, nil, false
	}
	var n uint64
	if width == 2 {
		n = uint64(binary.BigEndian.Uint16(p))
	} else {
		n = uint64(binary.BigEndian.Uint32(p))
	}
	p = p[width:]
	if uint64(len(p)) < n {
		return nil, nil, false
	}
	return p[:n], p[n:], true
}

// crcOK reports whether b is long enough to hold a checksum and its last
// four bytes are the CRC-32C of the rest.
func crcOK(b []byte) bool {
	return len(b) >= 1+crcLen && crc32c(b[:len(b)-crcLen]) == binary.BigEndian.Uint32(b[len(b)-crcLen:])
}

// peekSeq reports the version and seq of a payload without verifying it,
// for the cheap filter of the repair's forward search.
func peekSeq(b []byte) (version uint8, seq uint64, ok bool) {
	if len(b) < recordOverhead {
		return 0, 0, false
	}
	return b[0], binary.BigEndian.Uint64(b[1:]), true
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }
