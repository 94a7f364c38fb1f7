package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// WriteFile replaces path with data: it writes a temporary file in the
// same directory with mode perm, fsyncs it, renames it over path and
// fsyncs the directory. On failure the temporary file is removed and path
// is untouched.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write is WriteFile for contents written by write, which may stream
// them (a compressed snapshot); an error from write leaves path untouched.
func Write(path string, perm fs.FileMode, write func(io.Writer) error) error {
	tmp, err := writeTemp(path, perm, write)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(dirOf(path))
}

// WriteNew creates path, which must not exist (else an error wrapping
// fs.ErrExist), holding data with mode perm. Readers never see it partly
// written: the data goes to a temporary file, fsynced, that [LinkNew]
// puts in place.
func WriteNew(path string, data []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	return LinkNew(tmp, path)
}

// LinkNew puts the finished file tmp in place as path without ever
// replacing a file there: it hard-links tmp to path, which fails with an
// error wrapping fs.ErrExist if path exists, and fsyncs the directory.
// Where hard links are not supported (some network and FUSE file
// systems) it reserves path with an exclusive create and renames tmp over
// it. The caller removes tmp if it still exists.
func LinkNew(tmp, path string) error {
	err := os.Link(tmp, path)
	if errors.Is(err, fs.ErrExist) {
		return err
	}
	if err != nil {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		f.Close()
		if err := os.Rename(tmp, path); err != nil {
			os.Remove(path)
			return err
		}
	}
	return SyncDir(dirOf(path))
}

// IsTemp reports whether name (a base name) is one of the temporary files
// this package writes beside its target, which a crash can leave behind.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.HasSuffix(name, tempSuffix)
}

const tempSuffix = ".tmp"

// writeTemp writes a temporary file beside path with mode perm through
// write and fsyncs it, and returns its name; on failure it removes it.
func writeTemp(path string, perm fs.FileMode, write func(io.Writer) error) (tmp string, err error) {
	f, err := os.CreateTemp(dirOf(path), "."+filepath.Base(path)+".*"+tempSuffix)
	if err != nil {
		return "", err
	}
	name := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(name)
		}
	}()
	if err := f.Chmod(perm); err != nil && runtime.GOOS != "windows" {
		return "", err
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	if err := write(bw); err != nil {
		return "", err
	}
	if err := bw.Flush(); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	return name, f.Close()
}

func dirOf(path string) string {
	if dir := filepath.Dir(path); dir != "" {
		return dir
	}
	return "."
}

// CreateNew creates path, which must not exist (else an error wrapping
// fs.ErrExist), holding data with mode perm, and fsyncs it unless noSync
// is set. The caller fsyncs the directory (see [SyncDir]) once it has
// made all its entries. On failure path is removed again.
func CreateNew(path string, data []byte, perm fs.FileMode, noSync bool) (err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && !noSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// SyncDir fsyncs a directory so that the files created, renamed or removed
// in it survive a power cut. Windows cannot sync a directory and does not
// need to.
func SyncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
