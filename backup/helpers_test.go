package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
)

const testServerID = "c2VydmVyLWlkLWZvci10ZXN0cy0xMjM0\n"

// testEntry returns event k (1-based) of a deterministic stream of events
// that projections accept: a registration, a channel of that user, an ACL
// addition and a kick, over and over.
func testEntry(k uint64) eventlog.Entry {
	var typ string
	var data any
	switch k % 4 {
	case 1:
		pub := sha256.Sum256(fmt.Appendf(nil, "key-%d", k))
		typ, data = projections.EvUserRegistered, projections.RegisterData{User: fmt.Sprintf("u%d", k), Machine: "laptop", Pubkey: pub[:]}
	case 2:
		typ, data = projections.EvChannelCreated, projections.ChannelData{Channel: fmt.Sprintf("c%d", k), CreatedBy: fmt.Sprintf("u%d", k-1)}
	case 3:
		typ, data = projections.EvACLAdded, projections.MemberData{Channel: fmt.Sprintf("c%d", k-1), User: fmt.Sprintf("u%d", k-2)}
	default:
		typ, data = projections.EvKicked, projections.KickData{Channel: fmt.Sprintf("c%d", k-2), Target: fmt.Sprintf("u%d", k-3)}
	}
	b, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	return eventlog.Entry{TimeMs: 1_700_000_000_000 + int64(k), Actor: "server", Type: typ, Data: b}
}

func testEntries(from, n uint64) []eventlog.Entry {
	es := make([]eventlog.Entry, n)
	for i := range es {
		es[i] = testEntry(from + uint64(i))
	}
	return es
}

// historyData is history entry i: JSON as the server writes it.
func historyData(i uint64) []byte {
	return fmt.Appendf(nil, `{"cid":2,"from":"u1/laptop/s","ts_ms":%d,"body":"message %d"}`, 1_700_000_000_000+i, i)
}

// dirSpec describes a data dir for newDataDir.
type dirSpec struct {
	events    uint64   // events 1..events
	snapshots []uint64 // seqs to snapshot at
	history   uint64   // history entries 1..history
	truncate  uint64   // history truncated to start here (0: not)
	segment   int      // segment size, default 4 KiB
}

// newDataDir builds a data dir in a temporary directory, the way a server
// lays it out, and returns its path.
func newDataDir(t testing.TB, spec dirSpec) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if spec.segment == 0 {
		spec.segment = 4 << 10
	}
	opts := &eventlog.Options{NoSync: true, SegmentSize: spec.segment}
	if err := os.MkdirAll(filepath.Join(dir, snapshotsDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, serverIDName), []byte(testServerID), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "LOCK"), []byte("pid 1 on test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := eventlog.Open(filepath.Join(dir, eventsDir), opts)
	if err != nil {
		t.Fatal(err)
	}
	state := projections.New()
	snaps := map[uint64]bool{}
	for _, s := range spec.snapshots {
		snaps[s] = true
	}
	const batch = 1000
	for k := uint64(1); k <= spec.events; k += batch {
		n := min(batch, spec.events-k+1)
		recs, err := l.Append(testEntries(k, n))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if len(spec.snapshots) == 0 {
				continue
			}
			if err := state.Apply(r.Seq, projections.Event{Type: r.Type, Data: r.Data, Actor: r.Actor, TimeMs: r.TimeMs}); err != nil {
				t.Fatal(err)
			}
			if snaps[r.Seq] {
				writeTestSnapshot(t, dir, state, r)
			}
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	p, err := eventlog.OpenPlain(filepath.Join(dir, historyDir), opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= spec.history; i++ {
		if _, err := p.Append([][]byte{historyData(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if spec.truncate > 0 {
		if err := p.TruncateFront(spec.truncate); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeTestSnapshot(t testing.TB, dir string, state *projections.State, last eventlog.Record) {
	t.Helper()
	b, err := state.MarshalSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	s := eventlog.Snapshot{Schema: projections.SchemaVersion, Seq: last.Seq, Hash: last.Hash, Data: b}
	if err := eventlog.WriteSnapshot(filepath.Join(dir, snapshotsDir), s, 3); err != nil {
		t.Fatal(err)
	}
}

// records returns the verified records of the event log in dir/events.
func records(t testing.TB, dir string) []eventlog.Record {
	t.Helper()
	r, err := eventlog.OpenReader(filepath.Join(dir, eventsDir))
	if err != nil {
		t.Fatal(err)
	}
	var recs []eventlog.Record
	if err := r.Scan(func(rec eventlog.Record) error {
		recs = append(recs, rec)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return recs
}

// tree returns every regular file under dir (slash paths) and its bytes.
func tree(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		files[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func names(m map[string][]byte) []string {
	var ns []string
	for n := range m {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// mustCreate backs dir up into a new file in a temporary directory.
func mustCreate(t testing.TB, dir string) (string, Manifest) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "backup.tar.zst")
	m, err := Create(context.Background(), dir, out, io.Discard)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return out, m
}

// entry is one tar entry of an archive being rewritten by a test.
type entry struct {
	hdr  tar.Header
	data []byte
}

func readEntries(t testing.TB, file string) []entry {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zstd.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	var es []entry
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return es
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, entry{*hdr, data})
	}
}

func writeEntries(t testing.TB, file string, es []entry) {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	for _, e := range es {
		h := e.hdr
		h.Size = int64(len(e.data))
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// editManifest rewrites the manifest entry of es with fn.
func editManifest(t testing.TB, es []entry, fn func(m map[string]any)) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(es[0].data, &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	es[0].data = b
}

func isEmptyDir(t testing.TB, dir string) bool {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(des) == 0
}
