package eventlog

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/conclave/conclave/atomicfile"
)

// Plain is an append-only log of opaque payloads in a tidwall/wal
// directory, used for channel history. Each wal entry is crc32c(data) as a
// big-endian u32 followed by data. It shares the event log's machinery:
// torn-tail repair on open, one write and one fsync per batch, undo of a
// failed batch. Unlike [Log] its front can be truncated, and it may be
// empty with FirstIndex > 1 (then FirstIndex == LastIndex+1).
//
// A Plain is safe for concurrent use; one mutex serialises every call.
// [Plain.Scan] holds it only while reading, not while calling its callback.
type Plain struct {
	dir string

	// mu guards the fields below and every use of s.
	mu    sync.Mutex
	s     store
	first uint64 // first index; first == last+1 when empty
	last  uint64
}

// plainCodec is Plain's payload format for the repair code.
var plainCodec = codec{
	newCheck: func() checkFunc {
		return func(payload []byte, _ uint64) (bool, error) {
			_, err := plainData(payload)
			return false, err
		}
	},
	validAfter: func(data []byte, off int, _ uint64) bool {
		// Payloads carry no index to search for, so only frames are
		// followed: a bad entry with an intact frame followed by a good
		// one is damage in the middle; a frame running past the end is
		// a torn tail.
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
	},
}

// plainData checks a Plain payload's checksum and returns its data.
func plainData(payload []byte) ([]byte, error) {
	if len(payload) < crcLen {
		return nil, fmt.Errorf("%w: entry is %d bytes", ErrCorrupt, len(payload))
	}
	data := payload[crcLen:]
	if got, want := crc32c(data), binary.BigEndian.Uint32(payload); got != want {
		return nil, fmt.Errorf("%w: entry crc %08x, computed %08x", ErrChecksum, want, got)
	}
	return data, nil
}

// OpenPlain opens the plain log in dir, creating it if needed, after
// repairing a torn tail exactly as [Open] does (an entry failing its CRC
// counts as torn when no valid entry follows it).
func OpenPlain(dir string, opts *Options) (*Plain, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Plain{dir: dir}
	p.s = store{dir: dir, opts: o, codec: plainCodec, onOpen: p.onOpenLocked}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.s.open(false, 0); err != nil {
		return nil, fmt.Errorf("eventlog: open %s: %w", dir, err)
	}
	return p, nil
}

func (p *Plain) onOpenLocked(tailScan) error {
	first, last, err := p.s.firstLast()
	if err != nil {
		return err
	}
	p.first, p.last = first, last
	return nil
}

// Append appends datas as consecutive entries with one write and one
// fsync and returns the index of the first. On failure nothing of the
// batch is appended, exactly as for [Log.Append]. With no datas it returns
// the index the next entry would get. Data longer than [MaxDataLen] is
// refused with [ErrTooLarge].
func (p *Plain) Append(datas [][]byte) (firstIndex uint64, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.s.closed {
		return 0, ErrClosed
	}
	first := p.last + 1
	if len(datas) == 0 {
		return first, nil
	}
	size := 0
	for i, d := range datas {
		if len(d) > MaxDataLen {
			return 0, fmt.Errorf("eventlog: append entry %d: %w: %d bytes, limit %d", i, ErrTooLarge, len(d), MaxDataLen)
		}
		size += crcLen + len(d)
	}
	buf := make([]byte, 0, size)
	payloads := make([][]byte, len(datas))
	for i, d := range datas {
		start := len(buf)
		buf = binary.BigEndian.AppendUint32(buf, crc32c(d))
		buf = append(buf, d...)
		payloads[i] = buf[start:]
	}
	if err := p.s.writeBatch(first, payloads); err != nil {
		return 0, fmt.Errorf("eventlog: append %d-%d: %w", first, p.last+uint64(len(datas)), err)
	}
	p.last += uint64(len(datas))
	return first, nil
}

// Read returns the data of entry index, checking its CRC. It returns an
// error wrapping [ErrNotFound] outside FirstIndex..LastIndex and a
// [*SegmentError] for damage.
func (p *Plain) Read(index uint64) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.readLocked(index)
}

func (p *Plain) readLocked(index uint64) ([]byte, error) {
	if p.s.closed {
		return nil, ErrClosed
	}
	if index < p.first || index > p.last {
		return nil, fmt.Errorf("%w: index %d, log holds %d-%d", ErrNotFound, index, p.first, p.last)
	}
	payload, err := p.s.read(index)
	if err != nil {
		return nil, err
	}
	data, err := plainData(payload)
	if err != nil {
		return nil, p.s.segmentError(index, err)
	}
	return data, nil
}

// FirstIndex returns the index of the first entry; when the log is empty,
// the index the next entry will get.
func (p *Plain) FirstIndex() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.first
}

// LastIndex returns the index of the last entry; FirstIndex-1 when the log
// is empty.
func (p *Plain) LastIndex() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// TruncateFront removes every entry before index, which becomes the first;
// LastIndex+1 empties the log. An index at or before FirstIndex is a no-op,
// one beyond LastIndex+1 is an error wrapping [ErrNotFound]. tidwall/wal
// makes the truncation crash-safe (an interrupted one is finished on the
// next open); TruncateFront fsyncs the directory after it.
func (p *Plain) TruncateFront(index uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.s.closed {
		return ErrClosed
	}
	if index <= p.first {
		return nil
	}
	if index > p.last+1 {
		return fmt.Errorf("eventlog: truncate front to %d: %w: log holds %d-%d", index, ErrNotFound, p.first, p.last)
	}
	if err := p.s.ready(); err != nil {
		return err
	}
	err := p.s.hook(OpTruncate)
	if err == nil {
		err = p.s.w.TruncateFront(index)
		if err != nil {
			// The wal may be half-way and marks itself corrupt; a reopen
			// finishes or rolls back its truncation.
			if rerr := p.s.recover(p.last); rerr != nil {
				err = fmt.Errorf("%w (and the log could not be reopened: %w)", err, rerr)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("eventlog: truncate front to %d: %w", index, err)
	}
	p.first = index
	if err := p.s.refreshTail(); err != nil {
		return fmt.Errorf("eventlog: truncate front to %d: %w", index, err)
	}
	if p.s.sync() {
		if err := atomicfile.SyncDir(p.dir); err != nil {
			return fmt.Errorf("eventlog: truncate front to %d: %w", index, err)
		}
	}
	return nil
}

// Scan calls fn for each entry from index from (or FirstIndex, if later)
// up to the last entry at the time of the call, in order. Entries are read
// in chunks under the mutex; fn runs outside it, so it may call p's
// methods. Entries truncated away meanwhile are skipped. An error from fn
// stops the scan and is returned wrapped.
func (p *Plain) Scan(from uint64, fn func(index uint64, data []byte) error) error {
	const chunk = 256
	p.mu.Lock()
	stop := p.last
	p.mu.Unlock()
	next := from
	for {
		p.mu.Lock()
		if p.s.closed {
			p.mu.Unlock()
			return ErrClosed
		}
		next = max(next, p.first)
		if next > stop {
			p.mu.Unlock()
			return nil
		}
		end := min(stop, next+chunk-1)
		datas := make([][]byte, 0, end-next+1)
		for i := next; i <= end; i++ {
			d, err := p.readLocked(i)
			if err != nil {
				p.mu.Unlock()
				return err
			}
			datas = append(datas, d)
		}
		p.mu.Unlock()
		for i, d := range datas {
			if err := fn(next+uint64(i), d); err != nil {
				return fmt.Errorf("eventlog: scan index %d: %w", next+uint64(i), err)
			}
		}
		next = end + 1
	}
}

// Close syncs and closes the log. Later calls return [ErrClosed].
func (p *Plain) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.s.close()
}
