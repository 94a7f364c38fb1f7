//go:build unix

package regfile

import (
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// specialFiles makes a symlink to /dev/zero, a FIFO, a socket and a
// dangling symlink in dir.
func specialFiles(t *testing.T, dir string) []readCase {
	t.Helper()
	zero := filepath.Join(dir, "zero")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink(filepath.Join(dir, "gone"), dangling); err != nil {
		t.Fatal(err)
	}
	return []readCase{
		{"a symlink to /dev/zero", zero, 64 << 10, ErrNotRegular, zero + ": not a regular file (it is a device)"},
		{"/dev/zero itself", "/dev/zero", 64 << 10, ErrNotRegular, "/dev/zero: not a regular file (it is a device)"},
		{"a FIFO nobody writes", fifo, 1, ErrNotRegular, "(it is a named pipe)"},
		{"a socket", sock, 1, ErrNotRegular, "(it is a socket)"},
		{"a dangling symlink", dangling, 1, fs.ErrNotExist, "no such file"},
	}
}
