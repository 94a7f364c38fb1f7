package backup

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cancelAt is a progress writer that cancels its context when a line
// starting with prefix is printed: the work then stops at that stage.
type cancelAt struct {
	prefix string
	cancel context.CancelFunc
	seen   bool
}

func (c *cancelAt) Write(b []byte) (int, error) {
	if strings.HasPrefix(string(b), c.prefix) {
		c.seen = true
		c.cancel()
	}
	return len(b), nil
}

// A backup whose context is cancelled at any stage returns the context's
// error and leaves nothing where it was writing: no backup file, no
// temporary file.
func TestCreateStopsWhenCancelled(t *testing.T) {
	src := newDataDir(t, dirSpec{events: 3000, snapshots: []uint64{1000}, history: 500})
	for _, stage := range []string{"reading data dir", "copying events", "verifying"} {
		t.Run(stage, func(t *testing.T) {
			outDir := t.TempDir()
			out := filepath.Join(outDir, "b.tar.zst")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			progress := &cancelAt{prefix: stage, cancel: cancel}
			_, err := Create(ctx, src, out, progress)
			if !progress.seen {
				t.Fatalf("no progress line %q", stage)
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Create cancelled at %q = %v, want context.Canceled", stage, err)
			}
			if !isEmptyDir(t, outDir) {
				des, _ := os.ReadDir(outDir)
				t.Fatalf("a cancelled Create left %d entries in the output dir (%v)", len(des), des[0].Name())
			}
		})
	}
}

// A restore whose context is cancelled at any stage returns the context's
// error and leaves the target as it was: missing, or empty.
func TestRestoreStopsWhenCancelled(t *testing.T) {
	src := newDataDir(t, dirSpec{events: 3000, snapshots: []uint64{1000}, history: 500})
	file, _ := mustCreate(t, src)
	for _, stage := range []string{"unpacking", "checking"} {
		for _, exists := range []bool{false, true} {
			name := stage + " into a new dir"
			if exists {
				name = stage + " into an empty dir"
			}
			t.Run(name, func(t *testing.T) {
				parent := t.TempDir()
				dst := filepath.Join(parent, "restored")
				if exists {
					if err := os.Mkdir(dst, 0o700); err != nil {
						t.Fatal(err)
					}
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				progress := &cancelAt{prefix: stage, cancel: cancel}
				_, err := Restore(ctx, file, dst, progress)
				if !progress.seen {
					t.Fatalf("no progress line %q", stage)
				}
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("Restore cancelled at %q = %v, want context.Canceled", stage, err)
				}
				des, _ := os.ReadDir(parent)
				if exists {
					if len(des) != 1 || !isEmptyDir(t, dst) {
						t.Fatalf("a cancelled Restore left the parent with %d entries, or the target not empty", len(des))
					}
				} else if len(des) != 0 {
					t.Fatalf("a cancelled Restore left %d entries beside the target (%s)", len(des), des[0].Name())
				}
			})
		}
	}
}
