package datadir

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/conclave/conclave/atomicfile"
	"github.com/conclave/conclave/regfile"
)

// Names inside a data dir.
const (
	ServerIDFile = "server-id"
	LockFile     = "LOCK"
	EventsDir    = "events"
	HistoryDir   = "history"
	SnapshotsDir = "snapshots"
	// QuarantineDir holds what conclave repair set aside, one folder per
	// run; a server never reads it.
	QuarantineDir = "quarantine"
)

// MaxServerIDLen is the longest server id a data dir may hold.
const MaxServerIDLen = 128

// maxServerIDFile bounds the bytes read from a server-id file.
const maxServerIDFile = 4 << 10

// ErrNotDataDir is wrapped by every error that reports a directory that is
// not a conclave data dir (see [NotDataDirError]).
var ErrNotDataDir = errors.New("not a conclave data dir")

// NotDataDirError reports a directory that is not a conclave data dir. It
// reads "DIR is not a conclave data dir (REASON)", DIR as the caller gave
// it, and matches [ErrNotDataDir].
type NotDataDirError struct {
	Dir    string
	Reason string // e.g. "it does not exist", "no server-id file"
}

func (e *NotDataDirError) Error() string {
	if e.Reason == "" {
		return e.Dir + " is not a conclave data dir"
	}
	return e.Dir + " is not a conclave data dir (" + e.Reason + ")"
}

// Unwrap returns [ErrNotDataDir].
func (e *NotDataDirError) Unwrap() error { return ErrNotDataDir }

// Dir is an open data dir.
type Dir struct {
	path     string
	serverID string   // set by Open
	lock     *os.File // nil when read-only or closed
}

// Open opens the data dir at path for writing, creating it (mode 0700) and
// what it lacks: it takes an exclusive, non-blocking lock on LOCK (another
// server holding it is an error naming that server's pid and host), reads
// the server id or creates one (atomically, on first use) and creates
// events/, history/ and snapshots/. Close the Dir to release the lock.
func Open(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", path, err)
	}
	lock, err := lockDir(path)
	if err != nil {
		return nil, err
	}
	d := &Dir{path: path, lock: lock}
	if d.serverID, err = loadServerID(path); err != nil {
		d.Close()
		return nil, err
	}
	for _, sub := range []string{EventsDir, HistoryDir, SnapshotsDir} {
		if err := os.MkdirAll(filepath.Join(path, sub), 0o700); err != nil {
			d.Close()
			return nil, fmt.Errorf("create %s: %w", sub, err)
		}
	}
	return d, nil
}

// OpenReadOnly checks that path is a conclave data dir (it holds a
// server-id file and an events/ directory) and returns it. It writes
// nothing and takes no lock. Anything else gives a [*NotDataDirError];
// other failures, such as a permission error, are returned wrapped.
func OpenReadOnly(path string) (*Dir, error) {
	not := func(reason string) error { return &NotDataDirError{Dir: path, Reason: reason} }
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, not("it does not exist")
	case err != nil:
		return nil, fmt.Errorf("open data dir %s: %w", path, err)
	case !fi.IsDir():
		return nil, not("it is not a directory")
	}
	fi, err = os.Stat(filepath.Join(path, ServerIDFile))
	switch {
	case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return nil, not("no " + ServerIDFile + " file")
	case err != nil:
		return nil, fmt.Errorf("open data dir %s: %w", path, err)
	case !fi.Mode().IsRegular():
		return nil, not("no " + ServerIDFile + " file")
	}
	fi, err = os.Stat(filepath.Join(path, EventsDir))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, not("no " + EventsDir + " directory")
	case err != nil:
		return nil, fmt.Errorf("open data dir %s: %w", path, err)
	case !fi.IsDir():
		return nil, not("no " + EventsDir + " directory")
	}
	return &Dir{path: path}, nil
}

// Path returns the data dir as given to Open or OpenReadOnly.
func (d *Dir) Path() string { return d.path }

// Events returns the path of the event log directory.
func (d *Dir) Events() string { return filepath.Join(d.path, EventsDir) }

// History returns the path of the history log directory.
func (d *Dir) History() string { return filepath.Join(d.path, HistoryDir) }

// Snapshots returns the path of the snapshot directory.
func (d *Dir) Snapshots() string { return filepath.Join(d.path, SnapshotsDir) }

// Quarantine returns the path of the quarantine directory.
func (d *Dir) Quarantine() string { return filepath.Join(d.path, QuarantineDir) }

// ServerIDPath returns the path of the server-id file.
func (d *Dir) ServerIDPath() string { return filepath.Join(d.path, ServerIDFile) }

// ServerID returns the server id read or created by [Open]; "" for a Dir
// opened read-only (see [Dir.ReadServerID]).
func (d *Dir) ServerID() string { return d.serverID }

// ReadServerID reads the server-id file and returns the id and the file's
// bytes. A file that is empty, too long or holds an id longer than
// [MaxServerIDLen] is an error saying it is damaged.
func (d *Dir) ReadServerID() (id string, raw []byte, err error) {
	return readServerID(d.path)
}

// Close releases the lock of a Dir opened for writing. It is safe to call
// more than once and does nothing for a read-only Dir.
func (d *Dir) Close() error {
	if d.lock == nil {
		return nil
	}
	err := d.lock.Close()
	d.lock = nil
	return err
}

func readServerID(dir string) (string, []byte, error) {
	path := filepath.Join(dir, ServerIDFile)
	b, err := regfile.Read(path, maxServerIDFile)
	if err != nil {
		return "", nil, fmt.Errorf("read server id: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" || len(id) > MaxServerIDLen {
		return "", nil, fmt.Errorf("server id file %s is damaged", path)
	}
	return id, b, nil
}

// loadServerID reads DIR/server-id, creating it (atomically) on first use.
func loadServerID(dir string) (string, error) {
	id, _, err := readServerID(dir)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return id, err
	}
	if id, err = NewServerID(); err != nil {
		return "", err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, ServerIDFile), []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write server id: %w", err)
	}
	return id, nil
}

// lockDir takes an exclusive, non-blocking flock on DIR/LOCK and writes the
// holder's pid and host into it.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := regfile.Read(path, maxServerIDFile)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			h := strings.TrimSpace(string(holder))
			if h == "" {
				h = "another process"
			}
			return nil, fmt.Errorf("data dir %s is in use by %s (another conclave serve holds %s)", dir, h, LockFile)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	host, _ := os.Hostname()
	f.Truncate(0)
	f.WriteAt([]byte("pid "+strconv.Itoa(os.Getpid())+" on "+host+"\n"), 0)
	return f, nil
}

// NewServerID returns a new random server id (24 random bytes, base64url):
// what Open writes into a new data dir, and what a server that keeps
// nothing on disk presents.
func NewServerID() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate server id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
