package backup

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/conclave/conclave/atomicfile"
	"github.com/conclave/conclave/regfile"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
)

// stageName is the directory Restore unpacks into when the target
// directory already exists (and is empty).
const stageName = ".restore-tmp"

// Restore unpacks the backup file into dir and verifies it, so that
// `conclave serve --data-dir dir` starts with exactly the state of the
// backup and the same server id. dir must be an empty directory or not
// exist (its parent must). Nothing is left in dir unless the whole
// archive verified: Restore unpacks into a temporary directory — beside
// dir, or dir/.restore-tmp if dir exists — checks every file's SHA-256
// while unpacking, the event log's checksums and hash chain, that the
// snapshot loads and links to the chain and that the events after it
// replay, then re-reads what it wrote with eventlog's own reader and
// moves it into place.
//
// Once ctx is done Restore stops, removes what it unpacked and returns
// ctx's error, leaving dir as it was.
//
// Restore returns errors matching ErrNotEmpty, ErrNewerFormat or
// ErrDamaged, each one line naming the directory or archive and what is
// wrong.
func Restore(ctx context.Context, file, dir string, progress io.Writer) (m Manifest, err error) {
	p := progressWriter{progress}
	dir = filepath.Clean(dir)
	exists, err := checkTarget(dir)
	if err != nil {
		return Manifest{}, err
	}
	f, err := regfile.Open(file)
	if err != nil {
		return Manifest{}, fmt.Errorf("open backup: %w", err)
	}
	defer f.Close()

	var stage string
	if exists {
		stage = filepath.Join(dir, stageName)
		err = os.Mkdir(stage, 0o700)
	} else {
		stage, err = os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".restore-")
	}
	if err != nil {
		return Manifest{}, fmt.Errorf("restore into %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(stage)
		}
	}()

	p.printf("unpacking %s", file)
	mp, err := readArchive(ctx, bufio.NewReaderSize(f, 1<<20), file, stage)
	if err != nil {
		return Manifest{}, err
	}
	p.printf("checking the unpacked event log (%d events) and snapshot", mp.EventSeq)
	if err := checkStage(stage, mp); err != nil {
		return Manifest{}, kindErrorf(ErrDamaged, "backup %s does not restore: %w", file, err)
	}
	if err := ctx.Err(); err != nil {
		return Manifest{}, err
	}
	if err := atomicfile.SyncDir(stage); err != nil {
		return Manifest{}, err
	}
	if exists {
		err = moveEntries(stage, dir)
	} else {
		err = os.Rename(stage, dir)
		if err == nil {
			err = atomicfile.SyncDir(filepath.Dir(dir))
		}
	}
	if err != nil {
		return Manifest{}, fmt.Errorf("restore into %s: %w", dir, err)
	}
	return *mp, nil
}

// checkTarget reports whether dir exists, refusing anything but an empty
// directory or a missing one whose parent exists.
func checkTarget(dir string) (exists bool, err error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		parent := filepath.Dir(dir)
		if pfi, err := os.Stat(parent); err != nil || !pfi.IsDir() {
			return false, fmt.Errorf("restore into %s: parent directory %s does not exist", dir, parent)
		}
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !fi.IsDir() {
		return false, kindErrorf(ErrNotEmpty, "%s is not a directory", dir)
	}
	d, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer d.Close()
	names, err := d.Readdirnames(1)
	if len(names) > 0 {
		return false, kindErrorf(ErrNotEmpty, "%s is not empty", dir)
	}
	if err != nil && err != io.EOF {
		return false, err
	}
	return true, nil
}

// checkStage re-reads the unpacked files with eventlog's own code, as the
// server will: the whole chain and the snapshot it will load.
func checkStage(stage string, m *Manifest) error {
	r, err := eventlog.OpenReader(filepath.Join(stage, eventsDir))
	if err != nil {
		return err
	}
	count, last, err := r.Verify()
	if err != nil {
		return err
	}
	if count != m.EventSeq || hex.EncodeToString(last[:]) != m.LastHash {
		return fmt.Errorf("the unpacked event log holds %d events ending in %x…, want %d", count, last[:6], m.EventSeq)
	}
	s, err := eventlog.LoadNewestSnapshot(filepath.Join(stage, snapshotsDir), projections.SchemaVersion, nil)
	if err != nil {
		return err
	}
	switch {
	case s == nil && m.SnapshotSeq > 0:
		return fmt.Errorf("snapshot %d does not load", m.SnapshotSeq)
	case s != nil && s.Seq != m.SnapshotSeq:
		return fmt.Errorf("found snapshot %d, want %d", s.Seq, m.SnapshotSeq)
	}
	return nil
}

// moveEntries renames every entry of stage into dir, then removes stage.
// If a rename fails it moves back what it moved, so dir holds only stage.
// server-id goes last: should the process die half-way, a server started
// on dir makes a new id, which clients' pins then refuse loudly, rather
// than serving a partial state under the old id (and dir still holds
// .restore-tmp, so a second restore refuses it as not empty).
func moveEntries(stage, dir string) error {
	des, err := os.ReadDir(stage)
	if err != nil {
		return err
	}
	sort.SliceStable(des, func(i, j int) bool { return des[j].Name() == serverIDName })
	for i, de := range des {
		if err := os.Rename(filepath.Join(stage, de.Name()), filepath.Join(dir, de.Name())); err != nil {
			for _, back := range des[:i] {
				os.Rename(filepath.Join(dir, back.Name()), filepath.Join(stage, back.Name()))
			}
			return err
		}
	}
	if err := os.Remove(stage); err != nil {
		return err
	}
	return atomicfile.SyncDir(dir)
}
