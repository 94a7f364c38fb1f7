package eventlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/conclave/conclave/atomicfile"
)

// This file knows the on-disk layout of tidwall/wal (Binary format): a
// directory of segment files, each named by the 20-digit, zero-padded index
// of its first entry, each a sequence of frames uvarint(len) || payload.
// Other names in the directory (*.START and *.END of an interrupted front or
// back truncation, *.TEMP, *.broken copies of repaired tails) are not
// segments.

const segmentNameLen = 20

// Segment is one segment file of a wal directory.
type Segment struct {
	Index uint64 // index of its first entry (the seq of its first record in an event log)
	Name  string // the file name, e.g. "00000000000000000001"
	Path  string // the directory joined with Name
}

// SegmentName returns the file name of the segment whose first entry has
// the given index.
func SegmentName(index uint64) string { return fmt.Sprintf("%020d", index) }

// ParseSegmentName returns the index a segment file name stands for; ok
// is false for any other name.
func ParseSegmentName(name string) (index uint64, ok bool) {
	if len(name) != segmentNameLen {
		return 0, false
	}
	index, err := strconv.ParseUint(name, 10, 64)
	return index, err == nil && index > 0
}

// ListSegments returns the segment files of the wal directory dir in index
// order, following the same naming rule as tidwall/wal's load. Other files
// (*.broken copies, the *.START and *.END of a truncation) are not
// segments.
func ListSegments(dir string) ([]Segment, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []Segment
	for _, de := range des {
		name := de.Name()
		index, ok := ParseSegmentName(name)
		if de.IsDir() || !ok {
			continue
		}
		segs = append(segs, Segment{Index: index, Name: name, Path: filepath.Join(dir, name)})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].Index < segs[j].Index })
	return segs, nil
}

// HasTruncationFiles reports whether dir holds the .START or .END file of
// a tidwall/wal truncation in progress or interrupted (the next open of
// the log finishes it).
func HasTruncationFiles(dir string) (bool, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, de := range des {
		name := de.Name()
		if strings.HasSuffix(name, ".START") || strings.HasSuffix(name, ".END") {
			return true, nil
		}
	}
	return false, nil
}

// errIncomplete marks a frame whose header or payload runs past the end of
// the bytes available: a torn write, or the end of a segment being written.
var errIncomplete = errors.New("eventlog: incomplete frame")

// nextFrame parses the frame at the front of b and returns its payload and
// total size. It never reads past b.
func nextFrame(b []byte) (payload []byte, n int, err error) {
	size, hn := binary.Uvarint(b)
	switch {
	case hn == 0:
		return nil, 0, errIncomplete
	case hn < 0:
		// More than 64 bits of length: no writer produces that.
		return nil, 0, fmt.Errorf("%w: frame length overflows", ErrCorrupt)
	}
	if size > uint64(len(b)-hn) {
		return nil, 0, errIncomplete
	}
	return b[hn : hn+int(size)], hn + int(size), nil
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// skipFrames returns the offset just past the first count frames of b.
func skipFrames(b []byte, count uint64) (int, error) {
	off := 0
	for i := uint64(0); i < count; i++ {
		_, n, err := nextFrame(b[off:])
		if err != nil {
			return off, err
		}
		off += n
	}
	return off, nil
}

// brokenPath returns a name for keeping bytes cut from segment path:
// <segment>.broken, or <segment>.broken.N if that exists, so evidence from
// an earlier repair is never overwritten.
func brokenPath(path string) string {
	p := path + ".broken"
	for i := 1; ; i++ {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			return p
		}
		p = fmt.Sprintf("%s.broken.%d", path, i)
	}
}

// cutSegment truncates the segment file at path to size bytes, after
// saving the bytes beyond size in a .broken file. It returns the number of
// bytes cut and the name of the copy. The caller fsyncs the directory.
func cutSegment(path string, size int64, data []byte, sync bool) (cut int64, broken string, err error) {
	if int64(len(data)) <= size {
		return 0, "", nil
	}
	broken = brokenPath(path)
	if err := atomicfile.CreateNew(broken, data[size:], 0o640, !sync); err != nil {
		return 0, "", fmt.Errorf("keep cut bytes: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return 0, "", err
	}
	err = f.Truncate(size)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, "", fmt.Errorf("cut segment %s: %w", filepath.Base(path), err)
	}
	return int64(len(data)) - size, broken, nil
}
