package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/conclave/conclave/atomicfile"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
)

// An archive is a zstd-compressed tar stream:
//
//	manifest.json
//	server-id
//	snapshots/                    (directory)
//	snapshots/snap-<seq>.zst      (at most one)
//	events/                       (directory)
//	events/<index>                (segments, in order)
//	history/                      (directory)
//	history/<index>               (segments, in order)
//
// The snapshot comes before the events so that a reader can load it and
// then replay only the events after it, in one pass.

// archiveReader reads and verifies an archive in one pass and, if stage
// is set, writes its files under stage as it goes.
type archiveReader struct {
	name  string // the archive file, for messages
	stage string // "" to verify only

	m *Manifest

	// The event log as verified so far, and the state replayed from the
	// snapshot (if any) and the events after it.
	events eventlog.Chain
	state  *projections.State
	snap   *eventlog.Snapshot // the snapshot entry, once read
	linked bool               // the event at snap.Seq has snap.Hash

	historyNext uint64 // index the next history segment must start at
	historyAny  bool
}

func (a *archiveReader) damaged(format string, args ...any) error {
	return kindErrorf(ErrDamaged, "backup %s is damaged: %w", a.name, fmt.Errorf(format, args...))
}

func (a *archiveReader) truncated(err error) error {
	return kindErrorf(ErrDamaged, "backup %s is truncated or damaged: %w", a.name, err)
}

// readArchive reads the archive r (named name in messages), verifies
// every file against the manifest (presence, order, size, SHA-256) and its
// contents (the events' checksums and hash chain up to event_seq, the
// snapshot's checksum, its link to the chain and that the projections load
// it and replay the events after it, the history entries' checksums and
// range), and returns the manifest. With stage set it also writes every
// file under stage, fsynced; stage must exist and be empty.
//
// Errors match ErrNewerFormat or ErrDamaged, except failures to write
// under stage, which are returned as they are, and ctx's error once ctx is
// done.
func readArchive(ctx context.Context, r io.Reader, name, stage string) (m *Manifest, err error) {
	defer func() {
		if err != nil && ctx.Err() != nil {
			m, err = nil, ctx.Err()
		}
	}()
	r = ctxReader{ctx, r}
	a := &archiveReader{name: name, stage: stage, events: eventlog.Chain{Next: 1}, state: projections.New()}
	zr, err := zstd.NewReader(r, zstd.WithDecoderMaxMemory(maxEntrySize))
	if err != nil {
		return nil, a.truncated(err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)

	hdr, err := tr.Next()
	if err != nil {
		return nil, a.truncated(noEOF(err))
	}
	if hdr.Name != manifestName || hdr.Typeflag != tar.TypeReg || hdr.Size > maxManifestSize {
		return nil, a.damaged("the first entry is %q, not %s", hdr.Name, manifestName)
	}
	b, err := io.ReadAll(tr)
	if err != nil {
		return nil, a.truncated(noEOF(err))
	}
	if a.m, err = parseManifest(b); err != nil {
		if errors.Is(err, ErrNewerFormat) {
			return nil, err
		}
		return nil, a.damaged("%w", err)
	}

	var buf bytes.Buffer
	next := 0 // index in a.m.Files of the next regular file
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, a.truncated(noEOF(err))
		}
		if hdr.Typeflag == tar.TypeDir {
			dir := strings.TrimSuffix(hdr.Name, "/")
			if dir != eventsDir && dir != historyDir && dir != snapshotsDir {
				return nil, a.damaged("unexpected directory %q", hdr.Name)
			}
			continue
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, a.damaged("unexpected entry %q (type %q)", hdr.Name, hdr.Typeflag)
		}
		if next == len(a.m.Files) {
			return nil, a.damaged("%s is not in the manifest", hdr.Name)
		}
		f := a.m.Files[next]
		if hdr.Name != f.Path {
			return nil, a.damaged("%s is missing (found %s in its place)", f.Path, hdr.Name)
		}
		next++
		if hdr.Size != f.Size {
			return nil, a.damaged("%s is %d bytes, the manifest says %d", f.Path, hdr.Size, f.Size)
		}
		buf.Reset()
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(&buf, h), tr); err != nil {
			return nil, a.truncated(fmt.Errorf("%s: %w", f.Path, noEOF(err)))
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
			return nil, a.damaged("%s: sha256 %s…, the manifest says %s…", f.Path, got[:12], f.SHA256[:12])
		}
		if err := a.check(f.Path, buf.Bytes()); err != nil {
			return nil, err
		}
		if err := a.write(f.Path, buf.Bytes()); err != nil {
			return nil, err
		}
	}
	if next < len(a.m.Files) {
		return nil, a.truncated(fmt.Errorf("%s is missing", a.m.Files[next].Path))
	}
	// Reading the zstd stream to its end checks the frame checksum and
	// finds anything after the tar stream.
	if n, err := io.Copy(io.Discard, zr); err != nil {
		return nil, a.truncated(noEOF(err))
	} else if n > 0 {
		return nil, a.damaged("%d bytes after the end of the archive", n)
	}
	if err := a.finish(); err != nil {
		return nil, err
	}
	if a.stage != "" {
		for _, d := range []string{eventsDir, historyDir, snapshotsDir} {
			if err := os.MkdirAll(filepath.Join(a.stage, d), 0o700); err != nil {
				return nil, err
			}
			if err := atomicfile.SyncDir(filepath.Join(a.stage, d)); err != nil {
				return nil, err
			}
		}
	}
	return a.m, nil
}

// noEOF turns an early io.EOF into io.ErrUnexpectedEOF: inside an archive
// every end before the manifest's last file is a truncation.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// check verifies the contents of one file of the archive.
func (a *archiveReader) check(path string, data []byte) error {
	kind, n, _ := classify(path)
	switch kind {
	case kindServerID:
		if id := strings.TrimSpace(string(data)); id != a.m.ServerID {
			return a.damaged("server-id %q does not match the manifest's %q", id, a.m.ServerID)
		}
	case kindSnapshot:
		s, err := eventlog.DecodeSnapshot(bytes.NewReader(data), n)
		if err == nil && !projections.SchemaReadable(s.Schema) {
			err = fmt.Errorf("schema %d, this binary reads %d", s.Schema, projections.SchemaVersion)
		}
		var st *projections.State
		if err == nil {
			st, err = projections.UnmarshalSnapshot(s.Data)
		}
		if err != nil {
			return a.damaged("%s does not load: %w", path, err)
		}
		a.snap, a.state = s, st
	case kindEvents:
		if n != a.events.Next {
			return a.damaged("%s should start at seq %d", path, a.events.Next)
		}
		seg := eventlog.Segment{Index: n, Name: strings.TrimPrefix(path, eventsDir+"/")}
		if _, err := eventlog.ScanEvents(seg, data, &a.events, nil, a.apply); err != nil {
			return a.damaged("%s: %w", path, err)
		}
	case kindHistory:
		if a.historyAny && n != a.historyNext {
			return a.damaged("%s should start at index %d", path, a.historyNext)
		}
		c := eventlog.Chain{Next: n}
		seg := eventlog.Segment{Index: n, Name: strings.TrimPrefix(path, historyDir+"/")}
		if _, err := eventlog.ScanPlain(seg, data, &c, nil, nil); err != nil {
			return a.damaged("%s: %w", path, err)
		}
		a.historyAny, a.historyNext = true, c.Next
	}
	return nil
}

// apply checks a record against the snapshot and replays those after it.
func (a *archiveReader) apply(rec eventlog.Record) error {
	var snapSeq uint64
	if a.snap != nil {
		snapSeq = a.snap.Seq
	}
	switch {
	case rec.Seq < snapSeq:
		return nil
	case rec.Seq == snapSeq:
		if rec.Hash != a.snap.Hash {
			return fmt.Errorf("%w: snapshot %d does not link to the event log (hash %x…, event %x…)",
				eventlog.ErrChain, snapSeq, a.snap.Hash[:6], rec.Hash[:6])
		}
		a.linked = true
		return nil
	}
	if rec.Seq > a.m.EventSeq {
		return fmt.Errorf("event %d is beyond event_seq %d", rec.Seq, a.m.EventSeq)
	}
	return a.state.Apply(rec.Seq, projections.Event{Type: rec.Type, Data: rec.Data, Actor: rec.Actor, TimeMs: rec.TimeMs})
}

// finish checks what the manifest says about the whole archive.
func (a *archiveReader) finish() error {
	if last := a.events.Next - 1; last != a.m.EventSeq {
		return a.damaged("the event log ends at seq %d, the manifest says %d", last, a.m.EventSeq)
	}
	if got := hex.EncodeToString(a.events.Prev[:]); got != a.m.LastHash {
		return a.damaged("the last event's hash is %s…, the manifest says %.12s…", got[:12], a.m.LastHash)
	}
	if a.snap != nil && !a.linked {
		return a.damaged("snapshot %d does not link to the event log", a.snap.Seq)
	}
	if a.m.EventSeq > 0 && a.state.LastSeq() != a.m.EventSeq {
		return a.damaged("the state replays to seq %d, want %d", a.state.LastSeq(), a.m.EventSeq)
	}
	if a.historyAny && a.historyNext-1 != a.m.HistoryLast {
		return a.damaged("the history log ends at index %d, the manifest says %d", a.historyNext-1, a.m.HistoryLast)
	}
	return nil
}

// write stores one file under the stage directory, fsynced.
func (a *archiveReader) write(path string, data []byte) error {
	if a.stage == "" {
		return nil
	}
	dst := filepath.Join(a.stage, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	return atomicfile.CreateNew(dst, data, 0o600, false)
}
