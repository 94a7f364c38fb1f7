package eventlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/conclave/conclave/atomicfile"

	"github.com/klauspost/compress/zstd"
)

// Snapshot files are DIR/snap-<seq %020d>.zst: one zstd stream holding
//
//	magic "CNSNAP1\n" | schema u32 BE | seq u64 BE | hash [32] | len u64 BE | payload | crc32c(payload) u32 BE
//
// Written to a temporary file, fsynced, renamed into place, directory
// fsynced.

const (
	snapMagic  = "CNSNAP1\n"
	snapPrefix = "snap-"
	snapSuffix = ".zst"
	snapTemp   = ".snap-tmp-" // temporary files of older binaries; now atomicfile's
	// snapHeaderLen is magic + schema + seq + hash + len.
	snapHeaderLen = len(snapMagic) + 4 + 8 + 32 + 8
	// MaxSnapshotSize bounds the payload LoadNewestSnapshot accepts and
	// the zstd decoder's memory.
	MaxSnapshotSize = 1 << 30
)

// Snapshot is a caller's serialised state as of the record Seq with hash
// Hash, tagged with the caller's schema version.
type Snapshot struct {
	Schema uint32
	Seq    uint64
	Hash   [32]byte
	Data   []byte
	Path   string // set by LoadNewestSnapshot; ignored by WriteSnapshot
}

func snapshotName(seq uint64) string { return fmt.Sprintf("%s%020d%s", snapPrefix, seq, snapSuffix) }

// ParseSnapshotName returns the seq a snapshot file name (snap-<seq>.zst)
// stands for; ok is false for other names.
func ParseSnapshotName(name string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, snapPrefix)
	if !ok {
		return 0, false
	}
	if digits, ok = strings.CutSuffix(digits, snapSuffix); !ok || len(digits) != 20 {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil
}

// ListSnapshots returns the paths of the snapshot files in dir, oldest
// (lowest seq) first. A missing dir has no snapshots.
func ListSnapshots(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("eventlog: list snapshots: %w", err)
	}
	type snap struct {
		seq  uint64
		path string
	}
	var snaps []snap
	for _, de := range des {
		if seq, ok := ParseSnapshotName(de.Name()); ok && de.Type().IsRegular() {
			snaps = append(snaps, snap{seq, filepath.Join(dir, de.Name())})
		}
	}
	sort.Slice(snaps, func(i, j int) bool { return snaps[i].seq < snaps[j].seq })
	paths := make([]string, len(snaps))
	for i, s := range snaps {
		paths[i] = s.path
	}
	return paths, nil
}

// WriteSnapshot writes s to dir/snap-<s.Seq>.zst (zstd SpeedDefault, one
// encoder goroutine): temporary file, fsync, rename, directory fsync. It
// then deletes all but the newest keep snapshots (keep < 1 counts as 1)
// and temporary files left by an interrupted write. Only one WriteSnapshot
// may run on a dir at a time.
func WriteSnapshot(dir string, s Snapshot, keep int) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("eventlog: write snapshot %d: %w", s.Seq, err)
		}
	}()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	removeTemps(dir)
	err = atomicfile.Write(filepath.Join(dir, snapshotName(s.Seq)), 0o600, func(w io.Writer) error {
		enc, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
		if err != nil {
			return err
		}
		hdr := make([]byte, 0, snapHeaderLen)
		hdr = append(hdr, snapMagic...)
		hdr = binary.BigEndian.AppendUint32(hdr, s.Schema)
		hdr = binary.BigEndian.AppendUint64(hdr, s.Seq)
		hdr = append(hdr, s.Hash[:]...)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(len(s.Data)))
		var crc [4]byte
		binary.BigEndian.PutUint32(crc[:], crc32c(s.Data))
		for _, b := range [][]byte{hdr, s.Data, crc[:]} {
			if _, err := enc.Write(b); err != nil {
				enc.Close()
				return err
			}
		}
		return enc.Close()
	})
	if err != nil {
		return err
	}
	return pruneSnapshots(dir, max(keep, 1))
}

// removeTemps deletes temporary files of interrupted snapshot writes.
func removeTemps(dir string) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, de := range des {
		if strings.HasPrefix(de.Name(), snapTemp) || atomicfile.IsTemp(de.Name()) {
			os.Remove(filepath.Join(dir, de.Name()))
		}
	}
}

func pruneSnapshots(dir string, keep int) error {
	paths, err := ListSnapshots(dir)
	if err != nil || len(paths) <= keep {
		return err
	}
	for _, p := range paths[:len(paths)-keep] {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("prune: %w", err)
		}
	}
	return atomicfile.SyncDir(dir)
}

// LoadNewestSnapshot returns the newest snapshot in dir that is intact and
// has the given schema, trying newer files first. A file that cannot be
// read, fails to decompress, has a bad header, a CRC mismatch, a seq that
// disagrees with its name, or another schema is skipped with a warning
// naming it and the reason. It returns (nil, nil) if no snapshot is usable
// or dir does not exist. logger may be nil.
func LoadNewestSnapshot(dir string, schema uint32, logger *slog.Logger) (*Snapshot, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	paths, err := ListSnapshots(dir)
	if err != nil {
		return nil, err
	}
	for i := len(paths) - 1; i >= 0; i-- {
		s, err := ReadSnapshot(paths[i], schema)
		if err != nil {
			logger.Warn("snapshot skipped", "file", paths[i], "err", err)
			continue
		}
		return s, nil
	}
	return nil, nil
}

// ReadSnapshot reads and checks one snapshot file with the checks of
// [LoadNewestSnapshot]: an error says why a server would skip it.
func ReadSnapshot(path string, schema uint32) (*Snapshot, error) {
	s, err := readSnapshot(path)
	if err == nil && s.Schema != schema {
		err = fmt.Errorf("schema %d, want %d", s.Schema, schema)
	}
	return s, err
}

// readSnapshot reads and checks one snapshot file.
func readSnapshot(path string) (*Snapshot, error) {
	want, _ := ParseSnapshotName(filepath.Base(path))
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s, err := DecodeSnapshot(f, want)
	if err != nil {
		return nil, err
	}
	s.Path = path
	return s, nil
}

// DecodeSnapshot decodes a snapshot file's contents from r and checks its
// magic, that its seq is wantSeq (the one its file name carries), its
// payload's length and CRC-32C ([ErrChecksum]), the zstd frame checksum and
// that nothing follows the payload. The error says what is wrong.
func DecodeSnapshot(r io.Reader, wantSeq uint64) (*Snapshot, error) {
	dec, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxSnapshotSize+1<<20))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	var hdr [snapHeaderLen]byte
	if _, err := io.ReadFull(dec, hdr[:]); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if !bytes.Equal(hdr[:len(snapMagic)], []byte(snapMagic)) {
		return nil, errors.New("not a snapshot (bad magic)")
	}
	p := hdr[len(snapMagic):]
	s := &Snapshot{Schema: binary.BigEndian.Uint32(p), Seq: binary.BigEndian.Uint64(p[4:])}
	copy(s.Hash[:], p[12:44])
	n := binary.BigEndian.Uint64(p[44:])
	if s.Seq != wantSeq {
		return nil, fmt.Errorf("header says seq %d, file name %d", s.Seq, wantSeq)
	}
	if n > MaxSnapshotSize {
		return nil, fmt.Errorf("payload length %d exceeds %d", n, MaxSnapshotSize)
	}
	// Grow with the data rather than trusting n for the allocation.
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(dec, int64(n))); err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	if uint64(buf.Len()) != n {
		return nil, fmt.Errorf("payload: %w", io.ErrUnexpectedEOF)
	}
	var crc [4]byte
	if _, err := io.ReadFull(dec, crc[:]); err != nil {
		return nil, fmt.Errorf("payload crc: %w", err)
	}
	if got, want := crc32c(buf.Bytes()), binary.BigEndian.Uint32(crc[:]); got != want {
		return nil, fmt.Errorf("%w: payload crc %08x, computed %08x", ErrChecksum, want, got)
	}
	// Reading to EOF makes the decoder check the frame checksum and
	// rejects trailing data.
	if k, err := io.Copy(io.Discard, dec); err != nil {
		return nil, fmt.Errorf("trailer: %w", err)
	} else if k != 0 {
		return nil, fmt.Errorf("%d bytes after the payload", k)
	}
	s.Data = buf.Bytes()
	return s, nil
}
