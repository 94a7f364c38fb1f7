package identity

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/conclave/conclave/atomicfile"
)

// ensureDir makes sure dir exists. A directory it has to create gets mode
// 0700 (its missing parents too); an existing one is left as it is, the way
// ssh leaves ~/.ssh alone.
func ensureDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil:
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// MkdirAll is subject to the umask; 0700 survives any usual umask, but
	// say what we mean.
	return os.Chmod(dir, 0o700)
}

// createExclusive creates dir/name holding data with mode perm, and fails
// with an error wrapping fs.ErrExist if the file already exists. Readers
// never see a partly written file: the data goes to a temporary file that
// is then hard-linked into place, which fails instead of replacing an
// existing file. Where hard links are not supported, it falls back to
// O_EXCL and writes in place.
func createExclusive(dir, name string, data []byte, perm fs.FileMode) error {
	path := filepath.Join(dir, name)
	f, err := os.CreateTemp(dir, name+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = f.Chmod(perm)
	if err != nil && runtime.GOOS == "windows" {
		err = nil
	}
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	err = os.Link(tmp, path)
	if err == nil {
		return atomicfile.SyncDir(dir)
	}
	if errors.Is(err, fs.ErrExist) {
		return err
	}
	// No hard links here (some network and FUSE file systems): create the
	// file itself exclusively.
	return writeExclusive(path, data, perm)
}

func writeExclusive(path string, data []byte, perm fs.FileMode) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}
