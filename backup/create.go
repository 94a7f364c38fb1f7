package backup

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/conclave/conclave/atomicfile"
	"github.com/conclave/conclave/datadir"
	"github.com/conclave/conclave/regfile"

	"github.com/klauspost/compress/zstd"
)

// maxAttempts bounds how often Create starts over when the data dir
// changes under it in a way it cannot copy consistently.
const maxAttempts = 5

// Create writes a consistent, verified backup of the data dir dir to the
// new file out: a zstd-compressed tar of manifest.json, server-id, the
// newest usable snapshot, the event log and the history log (see the
// package documentation). dir may belong to a running server: Create
// takes no lock, opens nothing for writing under dir and never calls
// eventlog.Open. out must not exist and must not be inside dir; it is
// written to a temporary file in its directory, fsynced, verified
// (re-read, every file's SHA-256, the events' checksums and hash chain,
// the snapshot and the replay after it) and only then linked into place.
// Lines describing the progress go to progress, which may be nil.
//
// Once ctx is done Create stops, removes what it wrote and returns ctx's
// error: out is either complete and verified or absent.
//
// Create returns errors matching ErrNotDataDir, ErrExists, ErrChanging, or
// wrapping eventlog's sentinels for damage found in dir.
func Create(ctx context.Context, dir, out string, progress io.Writer) (m Manifest, err error) {
	p := progressWriter{progress}
	dir, out = filepath.Clean(dir), filepath.Clean(out)
	data, err := datadir.OpenReadOnly(dir)
	if err != nil {
		return Manifest{}, err
	}
	outDir, err := checkOut(dir, out)
	if err != nil {
		return Manifest{}, err
	}
	f, err := os.CreateTemp(outDir, "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return Manifest{}, fmt.Errorf("create backup file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			f.Close()
		}
		os.Remove(tmp)
	}()

	p.printf("reading data dir %s", dir)
	var pl *plan
	for attempt := 1; ; attempt++ {
		pl = &plan{}
		err = pl.scan(ctx, data, p)
		if err == nil {
			p.printf("copying events 1..%d, snapshot %s, history %s", pl.m.EventSeq, snapshotText(pl.m.SnapshotSeq), historyText(&pl.m))
			err = writeArchive(ctx, f, pl)
		}
		pl.close()
		var re *retryError
		if !errors.As(err, &re) {
			break
		}
		if attempt == maxAttempts {
			err = re.err
			break
		}
		p.printf("the data dir changed during the copy (%v); starting again", re.err)
		select {
		case <-time.After(time.Duration(attempt) * 20 * time.Millisecond):
		case <-ctx.Done():
		}
		if err = ctx.Err(); err != nil {
			break
		}
		if _, err = f.Seek(0, io.SeekStart); err == nil {
			err = f.Truncate(0)
		}
		if err != nil {
			break
		}
	}
	if err != nil {
		return Manifest{}, fmt.Errorf("back up %s: %w", dir, err)
	}
	if err := f.Close(); err != nil {
		f = nil
		return Manifest{}, fmt.Errorf("write backup file: %w", err)
	}
	f = nil

	p.printf("verifying %s", out)
	got, err := verifyFile(ctx, tmp, out)
	if err != nil {
		return Manifest{}, fmt.Errorf("verify the backup just written: %w", err)
	}
	want, _ := json.Marshal(pl.m)
	have, _ := json.Marshal(got)
	if !bytes.Equal(want, have) {
		return Manifest{}, fmt.Errorf("verify the backup just written: its manifest differs from the one written")
	}
	if err := ctx.Err(); err != nil {
		return Manifest{}, err
	}
	if err := linkNew(tmp, out); err != nil {
		return Manifest{}, err
	}
	return pl.m, nil
}

func snapshotText(seq uint64) string {
	if seq == 0 {
		return "none"
	}
	return fmt.Sprint(seq)
}

func historyText(m *Manifest) string {
	switch {
	case m.HistoryFirst == 0:
		return "none"
	case m.HistoryLast < m.HistoryFirst:
		return fmt.Sprintf("empty (next index %d)", m.HistoryFirst)
	}
	return fmt.Sprintf("%d..%d", m.HistoryFirst, m.HistoryLast)
}

// checkOut refuses an existing out or one inside dir, and returns the
// directory out goes in.
func checkOut(dir, out string) (string, error) {
	if _, err := os.Lstat(out); err == nil {
		return "", kindErrorf(ErrExists, "%s already exists; backup never overwrites a file", out)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	outDir := filepath.Dir(out)
	realOut, err := realPath(outDir)
	if err != nil {
		return "", fmt.Errorf("backup file's directory: %w", err)
	}
	realDir, err := realPath(dir)
	if err != nil {
		return "", err
	}
	if realOut == realDir || strings.HasPrefix(realOut, realDir+string(filepath.Separator)) {
		return "", fmt.Errorf("backup file %s would be inside the data dir %s; write it elsewhere", out, dir)
	}
	return outDir, nil
}

// realPath returns the absolute path of path with symbolic links resolved.
func realPath(path string) (string, error) {
	p, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", err
	}
	return filepath.Abs(p)
}

// linkNew puts the finished temporary file tmp in place as out, without
// ever replacing a file that appeared at out meanwhile.
func linkNew(tmp, out string) error {
	err := atomicfile.LinkNew(tmp, out)
	if errors.Is(err, fs.ErrExist) {
		return kindErrorf(ErrExists, "%s already exists; backup never overwrites a file", out)
	}
	if err != nil {
		return fmt.Errorf("put backup file in place: %w", err)
	}
	return nil
}

// verifyFile reads and verifies the archive at path (name in messages).
func verifyFile(ctx context.Context, path, name string) (*Manifest, error) {
	f, err := regfile.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readArchive(ctx, bufio.NewReaderSize(f, 1<<20), name, "")
}

// writeArchive writes the archive for pl to f, re-reading every source:
// a source whose first Size bytes no longer have the SHA-256 the scan saw
// (a tail undone after a failed batch, a history segment truncated away)
// makes the copy start over.
func writeArchive(ctx context.Context, f *os.File, pl *plan) error {
	bw := bufio.NewWriterSize(f, 1<<20)
	zw, err := zstd.NewWriter(bw, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return err
	}
	defer zw.Close()
	tw := tar.NewWriter(zw)
	mtime := pl.m.CreatedAt.Truncate(time.Second)

	mb, err := json.MarshalIndent(pl.m, "", "  ")
	if err != nil {
		return err
	}
	mb = append(mb, '\n')
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: manifestName, Size: int64(len(mb)), Mode: 0o600, ModTime: mtime, Format: tar.FormatUSTAR}); err != nil {
		return err
	}
	if _, err := tw.Write(mb); err != nil {
		return err
	}
	dirDone := map[string]bool{}
	writeDir := func(d string) error {
		if dirDone[d] {
			return nil
		}
		dirDone[d] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o700, ModTime: mtime, Format: tar.FormatUSTAR})
	}
	for _, s := range pl.sources {
		if d, _, ok := strings.Cut(s.Path, "/"); ok {
			if err := writeDir(d); err != nil {
				return err
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: s.Path, Size: s.Size, Mode: 0o600, ModTime: mtime, Format: tar.FormatUSTAR}); err != nil {
			return err
		}
		if err := copySource(ctx, tw, s); err != nil {
			return err
		}
	}
	for _, d := range []string{snapshotsDir, eventsDir, historyDir} {
		if err := writeDir(d); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Sync()
}

// copySource copies the first s.Size bytes of s.src to w and checks
// their SHA-256 against the scan's.
func copySource(ctx context.Context, w io.Writer, s source) error {
	var r io.Reader
	if s.f != nil {
		r = io.NewSectionReader(s.f, 0, s.Size)
	} else {
		f, err := os.Open(s.src)
		if errors.Is(err, fs.ErrNotExist) {
			return retryable(kindErrorf(ErrChanging, "%s disappeared while it was copied", s.Path))
		}
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	h := sha256.New()
	_, err := io.CopyN(io.MultiWriter(w, h), ctxReader{ctx, r}, s.Size)
	if errors.Is(err, io.EOF) {
		return retryable(kindErrorf(ErrChanging, "%s shrank while it was copied", s.Path))
	}
	if err != nil {
		return err
	}
	if hex.EncodeToString(h.Sum(nil)) != s.SHA256 {
		return retryable(kindErrorf(ErrChanging, "%s changed while it was copied", s.Path))
	}
	return nil
}

// progressWriter writes progress lines to w, if not nil.
type progressWriter struct{ w io.Writer }

func (p progressWriter) printf(format string, args ...any) {
	if p.w != nil {
		fmt.Fprintf(p.w, format+"\n", args...)
	}
}

// ctxReader reads from r until ctx is done, then fails with ctx's error,
// so that a long copy stops between two reads.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
