package identity

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
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
