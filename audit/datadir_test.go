package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conclave/conclave/datadir"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
)

func TestOpenNotDataDir(t *testing.T) {
	tests := []struct {
		name  string
		setup func(dir string) string // returns the path to open
	}{
		{"empty dir", func(dir string) string { return dir }},
		{"missing dir", func(dir string) string { return filepath.Join(dir, "nope") }},
		{"a file", func(dir string) string {
			p := filepath.Join(dir, "file")
			os.WriteFile(p, []byte("x"), 0o600)
			return p
		}},
		{"no server-id", func(dir string) string {
			os.Mkdir(filepath.Join(dir, datadir.EventsDir), 0o700)
			return dir
		}},
		{"no events", func(dir string) string {
			os.WriteFile(filepath.Join(dir, datadir.ServerIDFile), []byte("id\n"), 0o600)
			return dir
		}},
		{"events is a file", func(dir string) string {
			os.WriteFile(filepath.Join(dir, datadir.ServerIDFile), []byte("id\n"), 0o600)
			os.WriteFile(filepath.Join(dir, datadir.EventsDir), nil, 0o600)
			return dir
		}},
		{"server-id is a dir", func(dir string) string {
			os.Mkdir(filepath.Join(dir, datadir.ServerIDFile), 0o700)
			os.Mkdir(filepath.Join(dir, datadir.EventsDir), 0o700)
			return dir
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.setup(t.TempDir())
			d, err := Open(path)
			if err == nil {
				t.Fatalf("Open(%s) = %v, want an error", path, d)
			}
			if got, want := err.Error(), path+" is not a conclave data dir ("; !strings.HasPrefix(got, want) {
				t.Errorf("got %q, want %q and a reason", got, want)
			}
			if !errors.Is(err, ErrNotDataDir) {
				t.Errorf("%v does not wrap ErrNotDataDir", err)
			}
		})
	}
}

func TestOpenKeepsDirAsGiven(t *testing.T) {
	td := scenarioDir(t)
	t.Chdir(filepath.Dir(td.dir))
	rel := filepath.Base(td.dir) + "/"
	d := openDir(t, rel)
	if d.Dir() != rel {
		t.Errorf("Dir() = %q, want %q", d.Dir(), rel)
	}
	if _, err := Open("./nope"); err == nil || err.Error() != "./nope is not a conclave data dir (it does not exist)" {
		t.Errorf("got %v, want ./nope is not a conclave data dir (it does not exist)", err)
	}
}

// TestReadWhileWriting reads the log while a writer holds it open and
// appends (rolling to new segment files now and then): every read
// succeeds and sees a verified prefix, and nothing under the data dir
// changes because of the reader.
func TestReadWhileWriting(t *testing.T) {
	td := newTestDirSize(t, 4096)
	td.add(scenario...)
	d := openDir(t, td.dir)
	ctx := context.Background()

	const toAppend = 2000
	stop, done := make(chan struct{}), make(chan struct{})
	var appended int
	var writeErr error
	stopWriter := sync.OnceFunc(func() {
		close(stop)
		<-done
	})
	t.Cleanup(stopWriter) // before the log closes
	go func() {
		defer close(done)
		for i := 0; i < toAppend; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if writeErr = td.tryAdd(testEvent{25*time.Hour + time.Duration(i)*time.Millisecond, "alice/laptop/cli-1",
				projections.EvKicked, projections.KickData{Channel: "secret", Target: "bob"}}); writeErr != nil {
				return
			}
			appended++
		}
	}()
	finished := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	var last uint64
	for i := 0; i < 10 || !finished(); i++ {
		rep, err := d.Verify(ctx)
		if err != nil || !rep.OK() {
			t.Fatalf("Verify while writing: %v, %v", err, rep.Err())
		}
		if rep.Records < last || rep.Records < 13 {
			t.Fatalf("Verify saw %d records after %d", rep.Records, last)
		}
		last = rep.Records
		var n uint64
		if err := d.Events(ctx, Filter{}, func(e Event) error {
			if n++; e.Seq != n {
				return fmt.Errorf("event seq %d at position %d", e.Seq, n)
			}
			return nil
		}); err != nil {
			t.Fatalf("Events while writing: %v", err)
		}
		if _, _, err := d.StateAt(ctx, t0.Add(1000*time.Hour), false); err != nil {
			t.Fatalf("StateAt while writing: %v", err)
		}
	}
	stopWriter()
	if writeErr != nil || appended != toAppend {
		t.Fatalf("the writer appended %d events: %v", appended, writeErr)
	}
	if segs := len(segmentFiles(t, td.dir)); segs < 10 {
		t.Errorf("the writer rolled to %d segments only; the test wants several rolls", segs)
	}

	// The writer is idle but still holds the log open: the readers must
	// leave every file as it was.
	td.snapshot()
	before := tree(t, td.dir)
	if _, err := d.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	events(t, d, Filter{ShowTokens: true})
	if _, _, err := d.StateAt(ctx, t0, true); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(td.dir); err != nil {
		t.Fatal(err)
	}
	if after := tree(t, td.dir); !reflect.DeepEqual(after, before) {
		t.Errorf("the data dir changed:\nbefore %v\nafter  %v", before, after)
	}
	if _, err := os.Stat(filepath.Join(td.dir, "LOCK")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a LOCK file appeared: %v", err)
	}
}

func TestProgress(t *testing.T) {
	td := newTestDirSize(t, 1<<20)
	td.add(scenario[:3]...)
	es := make([]eventlog.Entry, progressEvery)
	for i := range es {
		es[i] = eventlog.Entry{TimeMs: t0.UnixMilli(), Actor: "server", Type: projections.EvKicked,
			Data: []byte(`{"channel":"ops","target":"bob"}`)}
	}
	if _, err := td.log.Append(es); err != nil {
		t.Fatal(err)
	}
	td.close()
	d := openDir(t, td.dir)
	var calls []uint64
	d.SetProgress(func(n uint64) { calls = append(calls, n) })
	if rep, err := d.Verify(context.Background()); err != nil || !rep.OK() {
		t.Fatalf("Verify: %v, %v", err, rep.Err())
	}
	if want := []uint64{progressEvery}; !reflect.DeepEqual(calls, want) {
		t.Errorf("progress calls: got %v, want %v", calls, want)
	}
}
