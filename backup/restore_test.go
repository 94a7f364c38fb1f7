package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// sample is one small backup shared by the refusal tests.
var sample struct {
	once sync.Once
	file string
	err  error
}

func sampleBackup(t *testing.T) string {
	t.Helper()
	sample.once.Do(func() {
		dir, err := os.MkdirTemp("", "backup-sample")
		if err != nil {
			sample.err = err
			return
		}
		// Left for the OS to clean: shared by tests that may run in parallel.
		tb := &tempT{T: t, dir: dir}
		src := newDataDir(tb, dirSpec{events: 300, snapshots: []uint64{200}, history: 50})
		sample.file = filepath.Join(dir, "sample.tar.zst")
		_, sample.err = Create(context.Background(), src, sample.file, nil)
	})
	if sample.err != nil {
		t.Fatal(sample.err)
	}
	return sample.file
}

// tempT makes newDataDir write under a directory that outlives the test
// that first asks for the sample.
type tempT struct {
	*testing.T
	dir string
	n   int
}

func (t *tempT) TempDir() string {
	t.n++
	d := filepath.Join(t.dir, fmt.Sprint(t.n))
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}

// restoreFails restores file into a fresh empty dir and into a missing
// one, checks that both fail with an error matching kind and containing
// msg, and that nothing was left behind.
func restoreFails(t *testing.T, file string, kind error, msg string) {
	t.Helper()
	parent := t.TempDir()
	empty := filepath.Join(parent, "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{empty, filepath.Join(parent, "missing")} {
		_, err := Restore(context.Background(), file, dst, nil)
		if err == nil || !errors.Is(err, kind) || !strings.Contains(err.Error(), msg) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("Restore into %s: got %v, want one line matching %v containing %q", filepath.Base(dst), err, kind, msg)
		}
		t.Logf("%s: %v", filepath.Base(dst), err)
	}
	if !isEmptyDir(t, empty) {
		t.Errorf("the empty target is not empty after a failed restore: %v", names(tree(t, empty)))
	}
	if des, _ := os.ReadDir(parent); len(des) != 1 {
		t.Errorf("the parent holds %d entries after a failed restore, want 1", len(des))
	}
}

func TestRestoreRefusesNonEmpty(t *testing.T) {
	file := sampleBackup(t)
	dst := t.TempDir()
	os.WriteFile(filepath.Join(dst, "keep"), []byte("x"), 0o600)
	_, err := Restore(context.Background(), file, dst, nil)
	if !errors.Is(err, ErrNotEmpty) || err.Error() != dst+" is not empty" {
		t.Fatalf("got %v, want %q", err, dst+" is not empty")
	}
	if got := names(tree(t, dst)); len(got) != 1 || got[0] != "keep" {
		t.Errorf("target holds %v", got)
	}
	// A file is not a target either.
	if _, err := Restore(context.Background(), file, filepath.Join(dst, "keep"), nil); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("restore onto a file: %v", err)
	}
	if _, err := Restore(context.Background(), file, filepath.Join(dst, "no", "such"), nil); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("restore under a missing parent: %v", err)
	}
}

func TestRestoreRefusesTruncated(t *testing.T) {
	file := sampleBackup(t)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{0, 1, 4, 20, len(b) / 4, len(b) / 2, 3 * len(b) / 4, len(b) - 100, len(b) - 5, len(b) - 1} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "cut.tar.zst")
			os.WriteFile(f, b[:cut], 0o600)
			restoreFails(t, f, ErrDamaged, "is truncated or damaged")
		})
	}
}

func TestRestoreRefusesFlippedByte(t *testing.T) {
	file := sampleBackup(t)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	const n = 24
	for i := 1; i <= n; i++ {
		off := 20 + (len(b)-30)*i/n
		t.Run(fmt.Sprint(off), func(t *testing.T) {
			c := append([]byte(nil), b...)
			c[off] ^= 0x04
			f := filepath.Join(t.TempDir(), "flipped.tar.zst")
			os.WriteFile(f, c, 0o600)
			restoreFails(t, f, ErrDamaged, "backup "+f+" is")
		})
	}
}

func TestRestoreRefusesBadContents(t *testing.T) {
	file := sampleBackup(t)
	for _, tc := range []struct {
		name string
		edit func(t *testing.T, es []entry) []entry
		kind error
		msg  string
	}{
		{"newer format", func(t *testing.T, es []entry) []entry {
			editManifest(t, es, func(m map[string]any) { m["format_version"] = 2 })
			return es
		}, ErrNewerFormat, "backup format 2 is newer than this conclave supports (1)"},
		{"sha256 mismatch", func(t *testing.T, es []entry) []entry {
			for i := range es {
				if strings.HasPrefix(es[i].hdr.Name, "events/0") {
					es[i].data[10] ^= 1
					break
				}
			}
			return es
		}, ErrDamaged, "sha256"},
		{"missing file", func(t *testing.T, es []entry) []entry {
			for i := range es {
				if strings.HasPrefix(es[i].hdr.Name, "history/0") {
					return append(es[:i], es[i+1:]...)
				}
			}
			t.Fatal("no history segment")
			return nil
		}, ErrDamaged, "missing"},
		{"missing last file", func(t *testing.T, es []entry) []entry {
			return es[:len(es)-1]
		}, ErrDamaged, "missing"},
		{"extra file", func(t *testing.T, es []entry) []entry {
			e := es[len(es)-1]
			e.hdr.Name = "../evil"
			return append(es, e)
		}, ErrDamaged, "not in the manifest"},
		{"no manifest first", func(t *testing.T, es []entry) []entry {
			return es[1:]
		}, ErrDamaged, "not manifest.json"},
		{"no format version", func(t *testing.T, es []entry) []entry {
			editManifest(t, es, func(m map[string]any) { delete(m, "format_version") })
			return es
		}, ErrDamaged, "no format_version"},
		{"event_seq beyond the log", func(t *testing.T, es []entry) []entry {
			editManifest(t, es, func(m map[string]any) { m["event_seq"] = 301 })
			return es
		}, ErrDamaged, "the event log ends at seq 300, the manifest says 301"},
		{"wrong server id", func(t *testing.T, es []entry) []entry {
			editManifest(t, es, func(m map[string]any) { m["server_id"] = "other" })
			return es
		}, ErrDamaged, "server-id"},
		{"path outside", func(t *testing.T, es []entry) []entry {
			editManifest(t, es, func(m map[string]any) {
				files := m["files"].([]any)
				files[len(files)-1].(map[string]any)["path"] = "../x"
			})
			return es
		}, ErrDamaged, `unexpected file "../x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := readEntries(t, file)
			f := filepath.Join(t.TempDir(), "edited.tar.zst")
			writeEntries(t, f, tc.edit(t, es))
			restoreFails(t, f, tc.kind, tc.msg)
		})
	}
}
