package backup

import (
	"errors"
	"fmt"

	"github.com/conclave/conclave/datadir"
)

// Sentinel errors. The errors Create and Restore return wrap them (test
// with errors.Is) and read as one line that names the file or directory
// and what is wrong with it.
var (
	// ErrNotDataDir reports a Create source that is not a conclave data
	// dir: missing, not a directory, or without server-id and events/
	// ([datadir.ErrNotDataDir]).
	ErrNotDataDir = datadir.ErrNotDataDir
	// ErrExists reports a Create output file that already exists. Create
	// never overwrites a file.
	ErrExists = errors.New("backup: output file exists")
	// ErrNotEmpty reports a Restore target that exists and is not an
	// empty directory.
	ErrNotEmpty = errors.New("backup: target directory is not empty")
	// ErrNewerFormat reports an archive whose manifest format_version is
	// above FormatVersion.
	ErrNewerFormat = errors.New("backup: archive format is newer than this binary reads")
	// ErrDamaged reports an archive that is truncated or corrupted: a
	// zstd or tar error, a checksum that does not match its manifest, a
	// missing or unexpected entry, or contents that fail verification.
	ErrDamaged = errors.New("backup: archive is truncated or damaged")
	// ErrChanging reports a data dir that kept changing in a way Create
	// could not copy consistently after several attempts (a history
	// truncation or a failed batch being undone at each try).
	ErrChanging = errors.New("backup: data dir kept changing during the copy")
)

// kindError is an error with a user-facing message (err) that also
// matches one of the sentinels above (kind) under errors.Is. The sentinel's
// own text stays out of the message, which must read as one clear line.
type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// kindErrorf returns an error that prints as fmt.Errorf(format, args...)
// and matches kind (and any %w operand) under errors.Is.
func kindErrorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}

// retryError marks a failure that a concurrent writer can cause (a file
// that vanished, a tail that changed between two reads): Create tries
// again from the start a few times before it reports err.
type retryError struct{ err error }

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

func retryable(err error) error { return &retryError{err} }
