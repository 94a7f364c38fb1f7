package eventlog

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/conclave/conclave/atomicfile"

	"github.com/tidwall/wal"
)

// Operation names passed to [Options.FailHook].
const (
	OpWrite    = "write"    // before a batch is written
	OpSync     = "sync"     // after a batch is written, before its fsync
	OpSyncDir  = "syncdir"  // before the directory fsync that follows a segment roll
	OpTruncate = "truncate" // before [Plain.TruncateFront]
)

// DefaultSegmentSize is the segment size used when [Options.SegmentSize]
// is zero.
const DefaultSegmentSize = 20 << 20

// Options configures [Open] and [OpenPlain]. A nil *Options means the
// defaults; the zero value of each field is its default.
type Options struct {
	// NoSync skips every fsync (segments, directory, repairs). For tests
	// only: a log written with NoSync loses acknowledged records on a
	// power cut. Default false.
	NoSync bool
	// SegmentSize is the size at which a segment file is closed and a new
	// one started; a target, not a limit. Default DefaultSegmentSize.
	SegmentSize int
	// Logger receives warnings about repairs. Default: discard.
	Logger *slog.Logger
	// FailHook, if set, is called with OpWrite, OpSync, OpSyncDir or
	// OpTruncate before the corresponding disk operation (also when NoSync
	// skips the fsync itself). A non-nil error is handled exactly as if
	// that operation had failed. For failure injection in tests. Default
	// nil.
	FailHook func(op string) error
	// TrustedSeq and TrustedHash name the last record covered by a snapshot
	// the caller has loaded and trusts. Damage to a record at or before
	// TrustedSeq — a complete frame whose record fails its checksum — then
	// does not stop Open (it is logged; Reader.Verify still reports it),
	// and if the damaged record is the last one its hash is taken to be
	// TrustedHash. Zero trusts nothing. Event log only.
	TrustedSeq  uint64
	TrustedHash [32]byte
	// KeepDamaged lets [OpenPlain] open a plain log whose last segment
	// holds a damaged entry in its middle — a whole frame whose checksum
	// fails, followed by valid entries — instead of refusing: the entry
	// stays on disk as it is, a warning names it, [Plain.Read] reports its
	// damage and a [PlainReader] scan with OnDamage finds it, so that the
	// caller can read around it. Damage that could be a torn write (no
	// valid entry follows) is still cut as a torn tail. Plain log only;
	// default false.
	KeepDamaged bool
}

func (o *Options) withDefaults() (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	if c.SegmentSize < 0 {
		return c, fmt.Errorf("eventlog: negative segment size %d", c.SegmentSize)
	}
	if c.SegmentSize == 0 {
		c.SegmentSize = DefaultSegmentSize
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// store wraps a tidwall/wal log with what it lacks: repair of a torn tail
// before opening, fsync of the directory, and undoing a failed batch. It is
// shared by Log and Plain and is not safe for concurrent use: its owner's
// mutex guards every call.
type store struct {
	dir    string
	opts   Options
	codec  codec
	onOpen func(tailScan) error // called after each wal.Open, before use

	w      *wal.Log // nil when closed, or when a recovery failed
	closed bool
	// want is the last index known to be durable, kept for a retry of
	// recovery while w is nil and the store is not closed.
	want  uint64
	tail  int64 // bytes in the wal's tail segment; mirrors its roll rule
	batch wal.Batch

	dirSyncs int // directory fsyncs after segment rolls, for tests
}

func (s *store) sync() bool { return !s.opts.NoSync }

func (s *store) hook(op string) error {
	if s.opts.FailHook == nil {
		return nil
	}
	if err := s.opts.FailHook(op); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

func (s *store) walOptions() *wal.Options {
	// A fresh value each time: wal.Open writes defaults into it. NoSync is
	// always set because the store calls Sync itself, so that a failing
	// fsync can be told from a failing write.
	return &wal.Options{
		NoSync:           true,
		SegmentSize:      s.opts.SegmentSize,
		LogFormat:        wal.Binary,
		SegmentCacheSize: 2,
		AllowEmpty:       true,
		DirPerms:         0o750,
		FilePerms:        0o640,
	}
}

// open repairs the directory and opens the wal. With cut set, every entry
// after index last is first removed from disk (undoing a failed batch).
func (s *store) open(cut bool, last uint64) error {
	if err := s.ensureDir(); err != nil {
		return err
	}
	if err := s.finishTruncation(); err != nil {
		return err
	}
	if cut {
		if err := cutAfter(s.dir, last, s.sync(), s.opts.Logger); err != nil {
			return fmt.Errorf("undo failed batch: %w", err)
		}
	}
	ts, err := repairTail(s.dir, s.codec, s.sync(), &s.opts)
	if err != nil {
		return err
	}
	w, err := wal.Open(s.dir, s.walOptions())
	if err != nil {
		if errors.Is(err, wal.ErrCorrupt) {
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return fmt.Errorf("open wal: %w", err)
	}
	if ts.segments == 0 && s.sync() {
		// wal.Open just created the first segment file.
		if err := atomicfile.SyncDir(s.dir); err != nil {
			w.Close()
			return err
		}
	}
	s.w, s.tail = w, ts.size
	if s.onOpen != nil {
		if err := s.onOpen(ts); err != nil {
			s.closeWAL()
			return err
		}
	}
	return nil
}

// ensureDir creates the log directory if needed and makes its entry in the
// parent durable.
func (s *store) ensureDir() error {
	if fi, err := os.Stat(s.dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", s.dir)
		}
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(s.dir, 0o750); err != nil {
		return err
	}
	if s.sync() {
		return atomicfile.SyncDir(filepath.Dir(filepath.Clean(s.dir)))
	}
	return nil
}

// finishTruncation lets tidwall/wal complete a front or back truncation
// that a crash interrupted (its .START/.END files), before the repair code
// looks for the last segment.
func (s *store) finishTruncation() error {
	has, err := HasTruncationFiles(s.dir)
	if err != nil || !has {
		return err
	}
	w, err := wal.Open(s.dir, s.walOptions())
	switch {
	case err == nil:
		w.Close()
	case errors.Is(err, wal.ErrCorrupt):
		// A torn tail stops wal.Open only after the truncation files are
		// dealt with; the repair below handles the tail.
	default:
		return fmt.Errorf("finish interrupted truncation: %w", err)
	}
	if has, err = HasTruncationFiles(s.dir); err != nil {
		return err
	} else if has {
		return fmt.Errorf("%w: interrupted truncation could not be completed in %s", ErrCorrupt, s.dir)
	}
	if s.sync() {
		return atomicfile.SyncDir(s.dir)
	}
	return nil
}

func (s *store) closeWAL() {
	if s.w == nil {
		return
	}
	if err := s.w.Close(); err != nil {
		// The wal's Close fsyncs first and keeps its file open if that
		// fails; nothing will write through it again.
		s.opts.Logger.Warn("wal close failed", "dir", s.dir, "err", err)
	}
	s.w = nil
}

// close closes the wal for good.
func (s *store) close() error {
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	if s.w == nil {
		return nil
	}
	err := s.w.Close()
	s.w = nil
	if err != nil {
		return fmt.Errorf("eventlog: close: %w", err)
	}
	return nil
}

// ready makes sure the wal is open, retrying a recovery that failed before.
func (s *store) ready() error {
	switch {
	case s.closed:
		return ErrClosed
	case s.w != nil:
		return nil
	}
	if err := s.recover(s.want); err != nil {
		return fmt.Errorf("eventlog: log unavailable after a failed write: %w", err)
	}
	return nil
}

// recover closes the wal, removes everything after index last from disk
// and reopens. tidwall/wal keeps a failed batch in memory (its next write
// would land misaligned), so nothing short of a reopen is safe.
func (s *store) recover(last uint64) error {
	s.closeWAL()
	s.want = last
	if err := s.open(true, last); err != nil {
		return err
	}
	if got, err := s.w.LastIndex(); err != nil || got != last {
		s.closeWAL()
		if err == nil {
			err = fmt.Errorf("%w: log ends at index %d after recovery, want %d", ErrCorrupt, got, last)
		}
		return err
	}
	return nil
}

// writeBatch appends payloads as entries first, first+1, ... with one
// write and one fsync. On any failure the batch is removed from disk and
// the wal reopened before the error is returned.
func (s *store) writeBatch(first uint64, payloads [][]byte) error {
	if err := s.ready(); err != nil {
		return err
	}
	s.batch.Clear()
	for i, p := range payloads {
		s.batch.Write(first+uint64(i), p)
	}
	rolled, tail := s.predictRoll(payloads)
	err := s.hook(OpWrite)
	if err == nil {
		err = s.w.WriteBatch(&s.batch)
	}
	if err == nil {
		if err = s.hook(OpSync); err == nil && s.sync() {
			err = s.w.Sync()
		}
	}
	if err == nil && rolled {
		// A new segment file appeared: make its directory entry durable.
		s.dirSyncs++
		if err = s.hook(OpSyncDir); err == nil && s.sync() {
			err = atomicfile.SyncDir(s.dir)
		}
	}
	s.batch.Clear()
	if err != nil {
		if rerr := s.recover(first - 1); rerr != nil {
			return fmt.Errorf("%w (and the log could not be reopened: %w)", err, rerr)
		}
		return err
	}
	s.tail = tail
	return nil
}

// predictRoll mirrors tidwall/wal's segment rule (writeBatch and cycle in
// wal.go v1.2.1): a new segment is started before the batch if the tail
// segment is already over SegmentSize, and after any entry that brings it
// to SegmentSize or more. It reports whether the batch creates a segment
// file and the tail segment's size afterwards. TestDirSyncOnRoll checks it
// against the directory.
func (s *store) predictRoll(payloads [][]byte) (rolled bool, tail int64) {
	size := int64(s.opts.SegmentSize)
	tail = s.tail
	if tail > size {
		rolled, tail = true, 0
	}
	for _, p := range payloads {
		tail += int64(uvarintLen(uint64(len(p))) + len(p))
		if tail >= size {
			rolled, tail = true, 0
		}
	}
	return rolled, tail
}

// refreshTail re-reads the tail segment's size after the wal rewrote it.
func (s *store) refreshTail() error {
	segs, err := ListSegments(s.dir)
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		s.tail = 0
		return nil
	}
	fi, err := os.Stat(segs[len(segs)-1].Path)
	if err != nil {
		return err
	}
	s.tail = fi.Size()
	return nil
}

// read returns the payload of entry index. tidwall/wal can panic on a
// damaged directory (a segment with fewer entries than the next one's name
// implies); that is reported as ErrCorrupt.
func (s *store) read(index uint64) (data []byte, err error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			data, err = nil, s.segmentError(index, fmt.Errorf("%w: wal read failed: %v", ErrCorrupt, r))
		}
	}()
	data, err = s.w.Read(index)
	switch {
	case err == nil:
		return data, nil
	case errors.Is(err, wal.ErrNotFound):
		return nil, fmt.Errorf("%w: index %d", ErrNotFound, index)
	case errors.Is(err, wal.ErrCorrupt):
		return nil, s.segmentError(index, fmt.Errorf("%w: segment unreadable", ErrCorrupt))
	}
	return nil, fmt.Errorf("eventlog: read %d: %w", index, err)
}

// segmentError wraps err in a SegmentError naming the segment that should
// hold entry index.
func (s *store) segmentError(index uint64, err error) error {
	name := "?"
	if segs, lerr := ListSegments(s.dir); lerr == nil {
		for _, sg := range segs {
			if sg.Index <= index {
				name = sg.Name
			}
		}
	}
	return &SegmentError{Segment: name, Seq: index, Offset: -1, Err: err}
}

// firstLast returns the wal's first and last index; first > last when the
// log is empty.
func (s *store) firstLast() (first, last uint64, err error) {
	if first, err = s.w.FirstIndex(); err != nil {
		return 0, 0, err
	}
	if last, err = s.w.LastIndex(); err != nil {
		return 0, 0, err
	}
	return first, last, nil
}
