package audit

import (
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/conclave/conclave/datadir"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
)

// t0 is the time of the first event of the test log.
var t0 = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)

// testToken and testToken2 are the invite tokens of the test log.
const (
	testToken  = "tok123SECRETsecretSECRET"
	testToken2 = "inv456SECRETsecretSECRET"
)

// testKey returns a deterministic Ed25519 public key.
func testKey(n byte) ed25519.PublicKey {
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = n
	return ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
}

func i64(v int64) *int64 { return &v }

// testEvent is one event of a test log.
type testEvent struct {
	at    time.Duration // after t0
	actor string
	typ   string
	data  any
}

// scenario is the test log: two users, a public channel renamed later, a
// private one with an invite, bans, kicks and an expiring invite.
var scenario = []testEvent{
	/* 1 */ {0, "alice/laptop/cli-1", projections.EvUserRegistered, projections.RegisterData{User: "alice", Machine: "laptop", Pubkey: testKey(1)}},
	/* 2 */ {time.Minute, "bob/desk/cli-2", projections.EvUserRegistered, projections.RegisterData{User: "bob", Machine: "desk", Pubkey: testKey(2)}},
	/* 3 */ {2 * time.Minute, "alice/laptop/cli-1", projections.EvChannelCreated, projections.ChannelData{Channel: "ops", Visibility: "public", CreatedBy: "alice"}},
	/* 4 */ {3 * time.Minute, "alice/laptop/cli-1", projections.EvChannelCreated, projections.ChannelData{Channel: "secret", Visibility: "private", CreatedBy: "alice"}},
	/* 5 */ {4 * time.Minute, "alice/laptop/cli-1", projections.EvInviteCreated, projections.InviteData{Channel: "secret", Token: testToken, Uses: i64(2)}},
	/* 6 */ {5 * time.Minute, "alice/phone/cli-9", projections.EvMachineAdded, projections.MachineData{User: "alice", Machine: "phone", Pubkey: testKey(3)}},
	/* 7 */ {time.Hour, "bob/desk/cli-2", projections.EvInviteRedeemed, projections.RedeemData{Channel: "secret", Token: testToken, User: "bob"}},
	/* 8 */ {time.Hour, "bob/desk/cli-2", projections.EvACLAdded, projections.MemberData{Channel: "secret", User: "bob"}},
	/* 9 */ {2 * time.Hour, "alice/laptop/cli-1", projections.EvChannelRenamed, projections.RenameData{Channel: "ops", NewName: "dev"}},
	/* 10 */ {3 * time.Hour, "server", projections.EvBanned, projections.MemberData{Channel: "dev", User: "bob"}},
	/* 11 */ {4 * time.Hour, "alice/laptop/cli-1", projections.EvInviteCreated, projections.InviteData{Channel: "dev", Token: testToken2, ExpiresAtMs: i64(t0.Add(5 * time.Hour).UnixMilli())}},
	/* 12 */ {24 * time.Hour, "alice/laptop/cli-1", projections.EvKicked, projections.KickData{Channel: "secret", Target: "bob/desk/cli-2"}},
	/* 13 */ {25 * time.Hour, "alice/laptop/cli-1", projections.EvVisibilityChanged, projections.ChannelData{Channel: "secret", Visibility: "unlisted"}},
}

// testDir is a data dir under construction.
type testDir struct {
	t     testing.TB
	dir   string
	log   *eventlog.Log
	state *projections.State
	recs  []eventlog.Record
}

// newTestDir creates a data dir with a server-id file, an empty history/
// and snapshots/ and an event log with small segments (so that the test
// log spans several), kept open until the test ends.
func newTestDir(t testing.TB) *testDir {
	t.Helper()
	return newTestDirSize(t, 600)
}

// newTestDirSize is newTestDir with segments of segSize bytes.
func newTestDirSize(t testing.TB, segSize int) *testDir {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, datadir.ServerIDFile), []byte("test-server-id\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{datadir.HistoryDir, datadir.SnapshotsDir} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	l, err := eventlog.Open(filepath.Join(dir, datadir.EventsDir), &eventlog.Options{NoSync: true, SegmentSize: segSize})
	if err != nil {
		t.Fatal(err)
	}
	td := &testDir{t: t, dir: dir, log: l, state: projections.New()}
	t.Cleanup(td.close)
	return td
}

func (td *testDir) close() {
	if td.log != nil {
		td.log.Close()
		td.log = nil
	}
}

// add appends events, checking first that they apply to the state.
func (td *testDir) add(evs ...testEvent) {
	td.t.Helper()
	for _, e := range evs {
		if err := td.tryAdd(e); err != nil {
			td.t.Fatal(err)
		}
	}
}

// tryAdd appends one event and applies it to the state; it may run on
// any goroutine.
func (td *testDir) tryAdd(e testEvent) error {
	data, err := json.Marshal(e.data)
	if err != nil {
		return err
	}
	ms := t0.Add(e.at).UnixMilli()
	recs, err := td.log.Append([]eventlog.Entry{{TimeMs: ms, Actor: e.actor, Type: e.typ, Data: data}})
	if err != nil {
		return err
	}
	if err := td.state.Apply(recs[0].Seq, projections.Event{Type: e.typ, Data: data, Actor: e.actor, TimeMs: ms}); err != nil {
		return fmt.Errorf("test event %d does not apply: %w", recs[0].Seq, err)
	}
	td.recs = append(td.recs, recs...)
	return nil
}

// snapshot writes a snapshot of the current state.
func (td *testDir) snapshot() string {
	td.t.Helper()
	data, err := td.state.MarshalSnapshot()
	if err != nil {
		td.t.Fatal(err)
	}
	seq := td.state.LastSeq()
	s := eventlog.Snapshot{Schema: projections.SchemaVersion, Seq: seq, Hash: td.recs[seq-1].Hash, Data: data}
	if err := eventlog.WriteSnapshot(filepath.Join(td.dir, datadir.SnapshotsDir), s, 3); err != nil {
		td.t.Fatal(err)
	}
	paths, _ := eventlog.ListSnapshots(filepath.Join(td.dir, datadir.SnapshotsDir))
	return paths[len(paths)-1]
}

// scenarioDir returns a closed data dir holding the scenario.
func scenarioDir(t testing.TB) *testDir {
	t.Helper()
	td := newTestDir(t)
	td.add(scenario...)
	td.close()
	return td
}

func openDir(t testing.TB, dir string) *DataDir {
	t.Helper()
	d, err := Open(dir)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return d
}

// segmentFiles returns the event-log segment files of dir, in order.
func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(dir, datadir.EventsDir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		if len(de.Name()) == 20 {
			out = append(out, filepath.Join(dir, datadir.EventsDir, de.Name()))
		}
	}
	sort.Strings(out)
	return out
}

// recordAt locates record seq on disk: its segment file and the offset
// and length of its payload (the record's encoding).
func recordAt(t testing.TB, dir string, seq uint64) (segment string, off, n int) {
	t.Helper()
	next := uint64(1)
	for _, path := range segmentFiles(t, dir) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for o := 0; o < len(b); {
			size, hn := binary.Uvarint(b[o:])
			if hn <= 0 {
				t.Fatalf("bad frame in %s at %d", path, o)
			}
			if next == seq {
				return path, o + hn, int(size)
			}
			o += hn + int(size)
			next++
		}
	}
	t.Fatalf("no record %d", seq)
	return "", 0, 0
}

// flipByte inverts one byte of a file.
func flipByte(t testing.TB, path string, off int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// fileState is what a test compares to check that nothing was written.
type fileState struct {
	size    int64
	mode    os.FileMode
	modTime time.Time
}

// tree lists every file and directory under dir with size, mode and
// mtime.
func tree(t testing.TB, dir string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out[rel] = fileState{fi.Size(), fi.Mode(), fi.ModTime()}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
