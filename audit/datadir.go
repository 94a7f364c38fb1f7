package audit

import (
	"context"
	"errors"
	"fmt"

	"github.com/conclave/conclave/datadir"

	"github.com/conclave/conclave/eventlog"
)

// progressEvery is how many records pass between two calls of the
// progress function.
const progressEvery = 1 << 13

// ErrNotDataDir is wrapped by the error [Open] returns for a directory
// that is not a conclave data dir: [datadir.ErrNotDataDir].
var ErrNotDataDir = datadir.ErrNotDataDir

// NotDataDirError reports a directory that is not a conclave data dir:
// "DIR is not a conclave data dir (REASON)", with DIR as the caller gave
// it.
type NotDataDirError = datadir.NotDataDirError

// DataDir is a conclave data dir opened for reading. It holds no open
// files: each method reads what it needs and closes it again, so there is
// nothing to close. Safe for concurrent use (see the package doc).
type DataDir struct {
	dir      string
	data     *datadir.Dir
	events   *eventlog.Reader
	progress func(records uint64)
}

// Open checks that dir is a conclave data dir (see [datadir.OpenReadOnly])
// and returns a reader for it. It writes nothing and takes no lock. A
// missing or different directory gives a *[NotDataDirError] ("DIR is not
// a conclave data dir (REASON)"); other failures (such as a permission
// error) are returned wrapped.
func Open(dir string) (*DataDir, error) {
	data, err := datadir.OpenReadOnly(dir)
	if errors.Is(err, ErrNotDataDir) {
		return nil, err // one line for the user, as it is
	}
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	r, err := eventlog.OpenReader(data.Events())
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", dir, err)
	}
	return &DataDir{dir: dir, data: data, events: r}, nil
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
