package backup

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
)

// The first pass of Create: read the data dir, verify it and decide what
// the backup holds.

// source is one file to copy into the archive: the first Size bytes of
// src, whose SHA-256 the scan computed. If f is set the copy reads from
// it, the file the scan read: history segments and snapshots are deleted
// or replaced as the server truncates history and prunes snapshots, and
// an open file keeps the bytes the scan saw. Event segments are never
// deleted and are reopened by name, so a long log costs no descriptors.
type source struct {
	File
	src string
	f   *os.File
}

// plan is the result of scanning a data dir: the manifest and the files
// to copy, in archive order.
type plan struct {
	m       Manifest
	sources []source
	open    []*os.File // files held open for the copy
}

func (pl *plan) close() {
	for _, f := range pl.open {
		f.Close()
	}
	pl.open = nil
}

// scan reads the data dir once and decides what the backup holds.
//
// The history log is read before the event log: a history entry names its
// channel by the seq of the channel's creation event, which the server
// appended before the entry, so every channel the copied history mentions
// is in the copied events. (Read the other way round, history could hold
// messages of a channel created after event N, which a restored server
// would later attach to a new channel that happens to get that seq.)
// The caller closes pl, also after an error.
func (pl *plan) scan(dir string, p progressWriter) error {
	pl.m = Manifest{FormatVersion: FormatVersion, CreatedAt: time.Now().UTC()}
	idPath := filepath.Join(dir, serverIDName)
	b, err := os.ReadFile(idPath)
	if err != nil {
		return fmt.Errorf("read server id: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" || len(id) > 128 || len(b) > maxServerIDSize {
		return fmt.Errorf("server id file %s is damaged", idPath)
	}
	pl.m.ServerID = id

	history, err := pl.scanHistory(dir)
	if err != nil {
		return err
	}
	events, segs, err := scanEventsDir(dir, &pl.m)
	if err != nil {
		return err
	}
	snap, err := pl.pickSnapshot(dir, segs, p)
	if err != nil {
		return err
	}

	pl.sources = append(pl.sources, source{File: File{Path: serverIDName, Size: int64(len(b)), SHA256: sum(b)}, src: idPath})
	if snap != nil {
		pl.sources = append(pl.sources, *snap)
	}
	pl.sources = append(pl.sources, events...)
	pl.sources = append(pl.sources, history...)
	for _, s := range pl.sources {
		pl.m.Files = append(pl.m.Files, s.File)
	}
	return nil
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// scanHistory checks the history segments and returns them cut after the
// last complete entry, held open. A data dir without history/ has no
// history.
func (pl *plan) scanHistory(dir string) ([]source, error) {
	hdir := filepath.Join(dir, historyDir)
	segs, err := listSegments(hdir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read history log: %w", err)
	}
	if trunc, err := hasTruncationFiles(hdir); err != nil {
		return nil, err
	} else if trunc {
		return nil, retryable(fmt.Errorf("the history log %s is being truncated (if the server is stopped, start it once to finish the truncation)", hdir))
	}
	// Open every segment at once: a truncation deletes segments from
	// the front, and the ones opened stay readable.
	files := make([]*os.File, len(segs))
	for i, seg := range segs {
		f, err := os.Open(seg.path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, retryable(fmt.Errorf("%s/%s: %w", historyDir, seg.name, err))
		}
		if err != nil {
			return nil, fmt.Errorf("read history log: %w", err)
		}
		files[i] = f
		pl.open = append(pl.open, f)
	}
	var srcs []source
	next := uint64(0)
	for i, seg := range segs {
		if i > 0 && seg.index != next {
			return nil, retryable(fmt.Errorf("%s/%s: segment starts at index %d, want %d", historyDir, seg.name, seg.index, next))
		}
		data, err := io.ReadAll(files[i])
		if err != nil {
			return nil, fmt.Errorf("read history log: %w", err)
		}
		tail := i == len(segs)-1
		n, count, err := scanHistory(seg, data, seg.index, tail)
		if err != nil {
			if tail {
				err = retryable(err)
			}
			return nil, err
		}
		srcs = append(srcs, source{File: File{Path: historyDir + "/" + seg.name, Size: int64(n), SHA256: sum(data[:n])}, src: seg.path, f: files[i]})
		next = seg.index + count
	}
	if len(segs) > 0 {
		pl.m.HistoryFirst, pl.m.HistoryLast = segs[0].index, next-1
	}
	return srcs, nil
}

// eventSegment is a copied event segment: its file and valid length.
type eventSegment struct {
	seg  segment
	size int
}

// scanEventsDir checks the event log: every record's checksum, seq and
// hash chain; the last segment is cut after its last complete record.
func scanEventsDir(dir string, m *Manifest) ([]source, []eventSegment, error) {
	edir := filepath.Join(dir, eventsDir)
	segs, err := listSegments(edir)
	if err != nil {
		return nil, nil, fmt.Errorf("read event log: %w", err)
	}
	if trunc, err := hasTruncationFiles(edir); err != nil {
		return nil, nil, err
	} else if trunc {
		return nil, nil, retryable(fmt.Errorf("the event log %s has an unfinished truncation (if the server is stopped, start it once to finish it)", edir))
	}
	var (
		srcs   []source
		copied []eventSegment
		c      = chain{next: 1}
	)
	for i, seg := range segs {
		tail := i == len(segs)-1
		if seg.index != c.next {
			err := error(&damageError{log: eventsDir, segment: seg.name, index: c.next, offset: 0,
				err: fmt.Errorf("%w: segment starts at seq %d, want %d", eventlog.ErrCorrupt, seg.index, c.next)})
			if tail && i > 0 {
				err = retryable(err)
			}
			return nil, nil, err
		}
		data, err := os.ReadFile(seg.path)
		if errors.Is(err, fs.ErrNotExist) && tail {
			return nil, nil, retryable(fmt.Errorf("%s/%s: %w", eventsDir, seg.name, err))
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read event log: %w", err)
		}
		n, err := scanEvents(seg, data, &c, tail, nil)
		if err != nil {
			if tail {
				err = retryable(err)
			}
			return nil, nil, err
		}
		srcs = append(srcs, source{File: File{Path: eventsDir + "/" + seg.name, Size: int64(n), SHA256: sum(data[:n])}, src: seg.path})
		copied = append(copied, eventSegment{seg, n})
	}
	m.EventSeq, m.LastHash = c.next-1, hex.EncodeToString(c.prev[:])
	return srcs, copied, nil
}

// pickSnapshot returns the newest snapshot at or below the copied events
// that decodes, has the projections' schema, links to the copied chain and
// loads; nil if there is none (a restored server then replays the whole
// log). Others are skipped with a progress line.
func (pl *plan) pickSnapshot(dir string, segs []eventSegment, p progressWriter) (*source, error) {
	paths, err := eventlog.ListSnapshots(filepath.Join(dir, snapshotsDir))
	if err != nil {
		return nil, err
	}
	for i := len(paths) - 1; i >= 0; i-- {
		name := filepath.Base(paths[i])
		seq, ok := parseSnapshotName(name)
		if !ok || seq == 0 || seq > pl.m.EventSeq {
			continue // newer than the copied events
		}
		f, err := os.Open(paths[i])
		if errors.Is(err, fs.ErrNotExist) {
			continue // pruned meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("read snapshot: %w", err)
		}
		pl.open = append(pl.open, f)
		b, err := io.ReadAll(f)
		if err != nil {
			return nil, fmt.Errorf("read snapshot: %w", err)
		}
		if err := checkSnapshot(b, seq, segs); err != nil {
			p.printf("skipping snapshot %s: %v", name, err)
			continue
		}
		pl.m.SnapshotSeq = seq
		return &source{File: File{Path: snapshotsDir + "/" + name, Size: int64(len(b)), SHA256: sum(b)}, src: paths[i], f: f}, nil
	}
	return nil, nil
}

// checkSnapshot checks that a snapshot file's bytes decode to a state this
// binary loads and that its hash is that of event seq in segs.
func checkSnapshot(b []byte, seq uint64, segs []eventSegment) error {
	s, err := decodeSnapshot(b, seq)
	if err != nil {
		return err
	}
	if s.Schema != projections.SchemaVersion {
		return fmt.Errorf("schema %d, this binary reads %d", s.Schema, projections.SchemaVersion)
	}
	h, err := hashAt(segs, seq)
	if err != nil {
		return err
	}
	if h != s.Hash {
		return fmt.Errorf("%w: it does not link to event %d", eventlog.ErrChain, seq)
	}
	_, err = projections.UnmarshalSnapshot(s.Data)
	return err
}

// hashAt re-reads the copied prefix of the segment holding event seq and
// returns the record's hash.
func hashAt(segs []eventSegment, seq uint64) ([32]byte, error) {
	var es *eventSegment
	for i := range segs {
		if segs[i].seg.index <= seq {
			es = &segs[i]
		}
	}
	if es == nil {
		return [32]byte{}, fmt.Errorf("event %d is not in the copy", seq)
	}
	data, err := os.ReadFile(es.seg.path)
	if err != nil {
		return [32]byte{}, err
	}
	if len(data) > es.size {
		data = data[:es.size]
	}
	off := 0
	for i := es.seg.index; off < len(data); i++ {
		payload, n, err := nextFrame(data[off:])
		if err != nil {
			break
		}
		if i == seq {
			rec, err := eventlog.DecodeRecord(payload)
			if err != nil || rec.Seq != seq {
				return [32]byte{}, fmt.Errorf("event %d changed while it was read", seq)
			}
			return rec.Hash, nil
		}
		off += n
	}
	return [32]byte{}, fmt.Errorf("event %d is not in the copy", seq)
}
