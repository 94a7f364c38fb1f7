package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/conclave/conclave/datadir"
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
func (pl *plan) scan(ctx context.Context, data *datadir.Dir, p progressWriter) error {
	pl.m = Manifest{FormatVersion: FormatVersion, CreatedAt: time.Now().UTC()}
	id, b, err := data.ReadServerID()
	if err != nil {
		return err
	}
	pl.m.ServerID = id
	dir := data.Path()

	history, err := pl.scanHistory(dir)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	events, segs, err := scanEventsDir(dir, &pl.m)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	snap, err := pl.pickSnapshot(dir, segs, p)
	if err != nil {
		return err
	}

	pl.sources = append(pl.sources, source{File: File{Path: serverIDName, Size: int64(len(b)), SHA256: sum(b)}, src: data.ServerIDPath()})
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
	segs, err := eventlog.ListSegments(hdir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read history log: %w", err)
	}
	if trunc, err := eventlog.HasTruncationFiles(hdir); err != nil {
		return nil, err
	} else if trunc {
		return nil, retryable(fmt.Errorf("the history log %s is being truncated (if the server is stopped, start it once to finish the truncation)", hdir))
	}
	// Open every segment at once: a truncation deletes segments from
	// the front, and the ones opened stay readable.
	files := make([]*os.File, len(segs))
	for i, seg := range segs {
		f, err := os.Open(seg.Path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, retryable(fmt.Errorf("%s/%s: %w", historyDir, seg.Name, err))
		}
		if err != nil {
			return nil, fmt.Errorf("read history log: %w", err)
		}
		files[i] = f
		pl.open = append(pl.open, f)
	}
	var (
		srcs []source
		c    eventlog.Chain
	)
	for i, seg := range segs {
		if i > 0 && seg.Index != c.Next {
			return nil, retryable(fmt.Errorf("%s/%s: segment starts at index %d, want %d", historyDir, seg.Name, seg.Index, c.Next))
		}
		data, err := io.ReadAll(files[i])
		if err != nil {
			return nil, fmt.Errorf("read history log: %w", err)
		}
		tail := i == len(segs)-1
		n, err := eventlog.ScanPlain(seg, data, &c, copyRule(tail), nil)
		if err != nil {
			err = fmt.Errorf("%s/%s: %w", historyDir, seg.Name, err)
			if tail {
				err = retryable(err)
			}
			return nil, err
		}
		srcs = append(srcs, source{File: File{Path: historyDir + "/" + seg.Name, Size: int64(n), SHA256: sum(data[:n])}, src: seg.Path, f: files[i]})
	}
	if len(segs) > 0 {
		pl.m.HistoryFirst, pl.m.HistoryLast = segs[0].Index, c.Next-1
	}
	return srcs, nil
}

// eventSegment is a copied event segment: its file and valid length.
type eventSegment struct {
	seg  eventlog.Segment
	size int
}

// copyRule is how the copy treats the end of a segment: the last segment
// of a live log is cut where Open's repair would cut it (a record being
// written, or torn by a crash); any other must be whole.
func copyRule(tail bool) *eventlog.ScanOptions {
	if tail {
		return &eventlog.ScanOptions{Tail: eventlog.TailTorn}
	}
	return nil
}

// scanEventsDir checks the event log: every record's checksum, seq and
// hash chain; the last segment is cut after its last complete record.
func scanEventsDir(dir string, m *Manifest) ([]source, []eventSegment, error) {
	edir := filepath.Join(dir, eventsDir)
	segs, err := eventlog.ListSegments(edir)
	if err != nil {
		return nil, nil, fmt.Errorf("read event log: %w", err)
	}
	if trunc, err := eventlog.HasTruncationFiles(edir); err != nil {
		return nil, nil, err
	} else if trunc {
		return nil, nil, retryable(fmt.Errorf("the event log %s has an unfinished truncation (if the server is stopped, start it once to finish it)", edir))
	}
	var (
		srcs   []source
		copied []eventSegment
		c      = eventlog.Chain{Next: 1}
	)
	for i, seg := range segs {
		tail := i == len(segs)-1
		data, err := os.ReadFile(seg.Path)
		if errors.Is(err, fs.ErrNotExist) && tail {
			return nil, nil, retryable(fmt.Errorf("%s/%s: %w", eventsDir, seg.Name, err))
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read event log: %w", err)
		}
		// A gap before the last segment can be a roll seen half-way.
		retry := tail && (i > 0 || seg.Index == c.Next)
		n, err := eventlog.ScanEvents(seg, data, &c, copyRule(tail), nil)
		if err != nil {
			err = fmt.Errorf("%s/%s: %w", eventsDir, seg.Name, err)
			if retry {
				err = retryable(err)
			}
			return nil, nil, err
		}
		srcs = append(srcs, source{File: File{Path: eventsDir + "/" + seg.Name, Size: int64(n), SHA256: sum(data[:n])}, src: seg.Path})
		copied = append(copied, eventSegment{seg, n})
	}
	m.EventSeq, m.LastHash = c.Next-1, hex.EncodeToString(c.Prev[:])
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
		seq, ok := eventlog.ParseSnapshotName(name)
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
	s, err := eventlog.DecodeSnapshot(bytes.NewReader(b), seq)
	if err != nil {
		return err
	}
	if !projections.SchemaReadable(s.Schema) {
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
		if segs[i].seg.Index <= seq {
			es = &segs[i]
		}
	}
	if es == nil {
		return [32]byte{}, fmt.Errorf("event %d is not in the copy", seq)
	}
	data, err := os.ReadFile(es.seg.Path)
	if err != nil {
		return [32]byte{}, err
	}
	if len(data) > es.size {
		data = data[:es.size]
	}
	var hash [32]byte
	found := errors.New("found")
	c := eventlog.Chain{Next: es.seg.Index, Unlinked: true}
	_, err = eventlog.ScanEvents(es.seg, data, &c, nil, func(rec eventlog.Record) error {
		if rec.Seq != seq {
			return nil
		}
		hash = rec.Hash
		return found
	})
	switch {
	case err == found:
		return hash, nil
	case err != nil:
		return [32]byte{}, fmt.Errorf("event %d changed while it was read", seq)
	}
	return [32]byte{}, fmt.Errorf("event %d is not in the copy", seq)
}
