package regfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Sentinels of [Read] and [Open].
var (
	ErrNotRegular = errors.New("not a regular file")
	ErrTooLarge   = errors.New("file too large")
)

// Read returns the content of the file at path, which must be a regular
// file (after following symlinks) of at most max bytes. It returns an
// error wrapping [ErrNotRegular] or [ErrTooLarge], or the os package's
// error.
func Read(path string, max int64) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, &tooLargeError{path: path, max: max}
	}
	return b, nil
}

// Open opens the file at path for reading if it is a regular file after
// following symlinks, for a caller that reads it as a stream under limits
// of its own (a backup archive). The type is checked before the file is
// opened (opening a FIFO would block) and again on the open file.
func Open(path string) (*os.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := regular(path, st.Mode()); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if st, err = f.Stat(); err == nil {
		err = regular(path, st.Mode())
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func regular(path string, m fs.FileMode) error {
	if m.IsRegular() {
		return nil
	}
	return fmt.Errorf("%s: %w (it is %s)", path, ErrNotRegular, kind(m))
}

// kind names a file type for an error message.
func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeCharDevice != 0, m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "not a plain file: " + m.Type().String()
}

type tooLargeError struct {
	path string
	max  int64
}

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("%s: larger than %s", e.path, Size(e.max))
}

func (e *tooLargeError) Unwrap() error { return ErrTooLarge }

// Size renders a byte count the way caps are given: "64 KiB", "1 MiB",
// "100 bytes".
func Size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
