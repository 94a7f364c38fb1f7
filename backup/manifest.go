package backup

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/conclave/conclave/datadir"
	"github.com/conclave/conclave/eventlog"
)

// FormatVersion is the archive format this package writes and the newest
// it reads. Restore refuses an archive of a newer format with
// ErrNewerFormat.
const FormatVersion = 1

// Archive entry names: the manifest, then the data dir's own names.
const (
	manifestName = "manifest.json"
	serverIDName = datadir.ServerIDFile
	eventsDir    = datadir.EventsDir
	historyDir   = datadir.HistoryDir
	snapshotsDir = datadir.SnapshotsDir

	maxManifestSize = 16 << 20
	maxServerIDSize = 4 << 10
	// maxEntrySize bounds a segment or snapshot read into memory while an
	// archive is verified; segments are 20 MiB by default.
	maxEntrySize = 2 << 30
)

// Manifest describes a backup. It is the archive's first entry,
// manifest.json, and what Create and Restore return.
type Manifest struct {
	// FormatVersion is the archive format, FormatVersion when written.
	FormatVersion int `json:"format_version"`
	// CreatedAt is when the copy was taken (UTC).
	CreatedAt time.Time `json:"created_at"`
	// ServerID is the contents of DIR/server-id, without the newline.
	ServerID string `json:"server_id"`
	// EventSeq is the last event the backup holds: it covers events
	// 1..EventSeq, 0 for an empty log.
	EventSeq uint64 `json:"event_seq"`
	// LastHash is the SHA-256 of event EventSeq in hex (all zeros for an
	// empty log).
	LastHash string `json:"last_hash"`
	// SnapshotSeq is the seq of the snapshot included, 0 if none.
	SnapshotSeq uint64 `json:"snapshot_seq"`
	// HistoryFirst and HistoryLast are the first and last index of the
	// history log; HistoryLast is HistoryFirst-1 when it is empty, and
	// both are 0 when the data dir had no history segments.
	HistoryFirst uint64 `json:"history_first"`
	HistoryLast  uint64 `json:"history_last"`
	// Files lists the regular files of the archive in archive order,
	// the manifest excepted.
	Files []File `json:"files"`
}

// File is one regular file of an archive: its path in the data dir
// (slash-separated), size and SHA-256 in hex.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Size returns the total size of the files in m.
func (m *Manifest) Size() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// fileKind is what an archive path holds.
type fileKind int

const (
	kindServerID fileKind = iota
	kindSnapshot
	kindEvents
	kindHistory
)

// classify returns what an archive path holds and the seq or index in its
// name; ok is false for any path a backup never contains.
func classify(path string) (kind fileKind, n uint64, ok bool) {
	if path == serverIDName {
		return kindServerID, 0, true
	}
	dir, name, found := strings.Cut(path, "/")
	if !found {
		return 0, 0, false
	}
	switch dir {
	case snapshotsDir:
		n, ok = eventlog.ParseSnapshotName(name)
		return kindSnapshot, n, ok && n > 0
	case eventsDir:
		n, ok = eventlog.ParseSegmentName(name)
		return kindEvents, n, ok
	case historyDir:
		n, ok = eventlog.ParseSegmentName(name)
		return kindHistory, n, ok
	}
	return 0, 0, false
}

// parseManifest decodes manifest.json and checks that it is one this
// binary reads and that it is self-consistent: server-id first, then at
// most one snapshot (the one SnapshotSeq names), then event segments and
// history segments, each in increasing order.
func parseManifest(b []byte) (*Manifest, error) {
	var v struct {
		FormatVersion *int `json:"format_version"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("manifest.json: %v", err)
	}
	if v.FormatVersion == nil || *v.FormatVersion < 1 {
		return nil, errors.New("manifest.json has no format_version")
	}
	if *v.FormatVersion > FormatVersion {
		return nil, kindErrorf(ErrNewerFormat, "backup format %d is newer than this conclave supports (%d)", *v.FormatVersion, FormatVersion)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest.json: %v", err)
	}
	bad := func(format string, args ...any) (*Manifest, error) {
		return nil, fmt.Errorf("manifest.json: "+format, args...)
	}
	if m.ServerID == "" || len(m.ServerID) > 128 || strings.TrimSpace(m.ServerID) != m.ServerID {
		return bad("bad server_id %q", m.ServerID)
	}
	if h, err := hex.DecodeString(m.LastHash); err != nil || len(h) != 32 {
		return bad("bad last_hash %q", m.LastHash)
	}
	if m.SnapshotSeq > m.EventSeq {
		return bad("snapshot_seq %d is after event_seq %d", m.SnapshotSeq, m.EventSeq)
	}
	if len(m.Files) == 0 || m.Files[0].Path != serverIDName {
		return bad("the first file is not %s", serverIDName)
	}
	var (
		last     = kindServerID
		lastN    uint64
		snapshot bool
		history  bool
		seen     = make(map[string]bool)
	)
	for i, f := range m.Files {
		kind, n, ok := classify(f.Path)
		if !ok || seen[f.Path] {
			return bad("unexpected file %q", f.Path)
		}
		seen[f.Path] = true
		if h, err := hex.DecodeString(f.SHA256); err != nil || len(h) != 32 {
			return bad("bad sha256 for %s", f.Path)
		}
		if f.Size < 0 || f.Size > maxEntrySize || kind == kindServerID && f.Size > maxServerIDSize {
			return bad("bad size %d for %s", f.Size, f.Path)
		}
		if i > 0 && (kind < last || kind == last && n <= lastN || kind == kindServerID) {
			return bad("%s is out of order", f.Path)
		}
		switch kind {
		case kindSnapshot:
			if n != m.SnapshotSeq {
				return bad("%s does not match snapshot_seq %d", f.Path, m.SnapshotSeq)
			}
			snapshot = true
		case kindHistory:
			if !history && n != m.HistoryFirst {
				return bad("%s does not start at history_first %d", f.Path, m.HistoryFirst)
			}
			history = true
		}
		last, lastN = kind, n
	}
	if m.SnapshotSeq > 0 && !snapshot {
		return bad("snapshot %d is not among the files", m.SnapshotSeq)
	}
	if !history && (m.HistoryFirst != 0 || m.HistoryLast != 0) || history && m.HistoryLast+1 < m.HistoryFirst {
		return bad("bad history range %d-%d", m.HistoryFirst, m.HistoryLast)
	}
	return &m, nil
}
