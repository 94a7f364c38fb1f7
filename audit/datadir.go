package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/conclave/conclave/eventlog"
)

// Data dir layout, as server.store writes it (see docs/).
const (
	serverIDFile = "server-id"
	eventsDir    = "events"
	historyDir   = "history"
	snapshotsDir = "snapshots"
)

// progressEvery is how many records pass between two calls of the
// progress function.
const progressEvery = 1 << 13

// ErrNotDataDir is wrapped by the error [Open] returns for a directory
// that is not a conclave data dir.
var ErrNotDataDir = errors.New("not a conclave data dir")

// NotDataDirError reports a directory that is not a conclave data dir.
// Its message is exactly "DIR is not a conclave data dir", with DIR as
// the caller gave it.
type NotDataDirError struct {
	Dir string
}

func (e *NotDataDirError) Error() string { return e.Dir + " is not a conclave data dir" }

// Unwrap returns [ErrNotDataDir].
func (e *NotDataDirError) Unwrap() error { return ErrNotDataDir }

// DataDir is a conclave data dir opened for reading. It holds no open
// files: each method reads what it needs and closes it again, so there is
// nothing to close. Safe for concurrent use (see the package doc).
type DataDir struct {
	dir      string
	events   *eventlog.Reader
	progress func(records uint64)
}

// Open checks that dir is a conclave data dir — it holds a server-id file
// and an events/ directory — and returns a reader for it. It writes
// nothing and takes no lock. A missing or different directory gives a
// *[NotDataDirError] ("DIR is not a conclave data dir"); other failures
// (such as a permission error) are returned wrapped.
func Open(dir string) (*DataDir, error) {
	notDataDir := &NotDataDirError{Dir: dir}
	fi, err := os.Stat(filepath.Join(dir, serverIDFile))
	switch {
	case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return nil, notDataDir
	case err != nil:
		return nil, fmt.Errorf("audit: open %s: %w", dir, err)
	case !fi.Mode().IsRegular():
		return nil, notDataDir
	}
	fi, err = os.Stat(filepath.Join(dir, eventsDir))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, notDataDir
	case err != nil:
		return nil, fmt.Errorf("audit: open %s: %w", dir, err)
	case !fi.IsDir():
		return nil, notDataDir
	}
	r, err := eventlog.OpenReader(filepath.Join(dir, eventsDir))
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", dir, err)
	}
	return &DataDir{dir: dir, events: r}, nil
}

// Dir returns the data dir as given to Open.
func (d *DataDir) Dir() string { return d.dir }

// SetProgress makes every later Events, StateAt and Verify call fn from
// time to time (every few thousand records) with the number of records
// read so far, for a progress display on long logs. fn runs on the
// caller's goroutine and must be quick. Call SetProgress before using d
// from several goroutines; nil turns progress off.
func (d *DataDir) SetProgress(fn func(records uint64)) { d.progress = fn }

// scan calls fn for every record of the event log, in order, verified
// (see [eventlog.Reader.Scan]). It stops early, with ctx's error, once ctx
// is done, and reports progress.
//
// A scan that runs while the server rolls to new segment files can list
// a newer segment but miss an older one created during the listing
// (readdir makes no promise about entries created meanwhile, and ext4
// returns them in hash order), and then reports a gap between segments
// that is not on disk. So when a scan fails with such a structural
// ErrCorrupt and the segment files changed during it, scan tries again,
// up to maxScans times in all: the new scan verifies the log from seq 1
// again but passes fn only the records it has not seen yet.
func (d *DataDir) scan(ctx context.Context, fn func(eventlog.Record) error) error {
	var delivered uint64 // seq of the last record passed to fn
	for attempt := 1; ; attempt++ {
		before, lerr := segmentNames(d.events.Dir())
		err := d.events.Scan(func(r eventlog.Record) error {
			if r.Seq <= delivered {
				return nil // verified again, passed on by an earlier attempt
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			delivered = r.Seq
			if delivered%progressEvery == 0 && d.progress != nil {
				d.progress(delivered)
			}
			return fn(r)
		})
		if err == nil || attempt == maxScans || lerr != nil || !structural(err) {
			return err
		}
		after, lerr := segmentNames(d.events.Dir())
		if lerr != nil || slices.Equal(before, after) {
			return err
		}
	}
}

// maxScans bounds how often scan reads a log that keeps changing.
const maxScans = 3

// structural reports whether err is damage to the layout of the log (a
// gap between segments, an incomplete frame) rather than to a record's
// content (checksum, chain, format).
func structural(err error) bool {
	var se *eventlog.SegmentError
	return errors.As(err, &se) && errors.Is(err, eventlog.ErrCorrupt) &&
		!errors.Is(err, eventlog.ErrChecksum) && !errors.Is(err, eventlog.ErrChain) &&
		!errors.Is(err, eventlog.ErrNewerFormat)
}

// segmentNames returns the sorted names of the segment files of an event
// log directory (20 digits, as tidwall/wal names them).
func segmentNames(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, de := range des {
		if n := de.Name(); len(n) == 20 && strings.Trim(n, "0123456789") == "" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}
