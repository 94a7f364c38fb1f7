package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
// (see [eventlog.Reader.Scan], which also copes with a live writer rolling
// to new segments). It stops early, with ctx's error, once ctx is done,
// and reports progress.
func (d *DataDir) scan(ctx context.Context, fn func(eventlog.Record) error) error {
	return d.events.Scan(func(r eventlog.Record) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if r.Seq%progressEvery == 0 && d.progress != nil {
			d.progress(r.Seq)
		}
		return fn(r)
	})
}
