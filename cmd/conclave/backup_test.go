package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/conclave/conclave/backup"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
	"github.com/conclave/conclave/server"
)

// newBackupDataDir writes a small data dir the way a server lays it out:
// a user, a channel of theirs, two history messages in it.
func newBackupDataDir(t *testing.T) (dir, serverID string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "data")
	serverID = "dGVzdC1zZXJ2ZXItaWQtZm9yLWJhY2t1cA"
	if err := os.MkdirAll(filepath.Join(dir, "snapshots"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "server-id"), []byte(serverID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := &eventlog.Options{NoSync: true}
	l, err := eventlog.Open(filepath.Join(dir, "events"), opts)
	if err != nil {
		t.Fatal(err)
	}
	pub := sha256.Sum256([]byte("alice's key"))
	reg, _ := json.Marshal(projections.RegisterData{User: "alice", Machine: "laptop", Pubkey: pub[:]})
	ch, _ := json.Marshal(projections.ChannelData{Channel: "general", CreatedBy: "alice"})
	if _, err := l.Append([]eventlog.Entry{
		{TimeMs: 1_700_000_000_000, Actor: "alice/laptop/s1", Type: projections.EvUserRegistered, Data: reg},
		{TimeMs: 1_700_000_000_001, Actor: "alice/laptop/s1", Type: projections.EvChannelCreated, Data: ch},
	}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	h, err := eventlog.OpenPlain(filepath.Join(dir, "history"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Append([][]byte{
		[]byte(`{"cid":2,"from":"alice/laptop/s1","ts_ms":1700000000002,"body":"hello"}`),
		[]byte(`{"cid":2,"from":"alice/laptop/s1","ts_ms":1700000000003,"body":"again"}`),
	}); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, serverID
}

func TestBackupRestoreCmd(t *testing.T) {
	src, id := newBackupDataDir(t)
	out := filepath.Join(t.TempDir(), "b.tar.zst")
	var stdout, stderr bytes.Buffer
	g := &Globals{Stdout: &stdout, Stderr: &stderr}
	if err := (&BackupCmd{DataDir: src, Out: out}).Run(context.Background(), g); err != nil {
		t.Fatalf("backup: %v", err)
	}
	want := regexp.MustCompile(`^✓ backup of ` + regexp.QuoteMeta(src) + ` at event seq 2 → ` + regexp.QuoteMeta(out) + ` \(3 files, \d+ bytes\)\n$`)
	if !want.MatchString(stdout.String()) {
		t.Errorf("backup printed %q", stdout.String())
	}

	// Backing up onto an existing file is refused.
	if err := (&BackupCmd{DataDir: src, Out: out}).Run(context.Background(), g); !errors.Is(err, backup.ErrExists) {
		t.Errorf("second backup to the same file: %v", err)
	}

	dst := filepath.Join(t.TempDir(), "restored")
	stdout.Reset()
	g.JSON = true
	if err := (&RestoreCmd{File: out, DataDir: dst}).Run(context.Background(), g); err != nil {
		t.Fatalf("restore: %v", err)
	}
	var m backup.Manifest
	if err := json.Unmarshal(stdout.Bytes(), &m); err != nil {
		t.Fatalf("restore --json printed %q: %v", stdout.String(), err)
	}
	if m.EventSeq != 2 || m.ServerID != id || m.HistoryLast != 2 {
		t.Errorf("manifest %+v", m)
	}

	// Restoring again into the now non-empty dir is refused.
	err := (&RestoreCmd{File: out, DataDir: dst}).Run(context.Background(), g)
	if err == nil || err.Error() != dst+" is not empty" {
		t.Errorf("restore into a non-empty dir: %v", err)
	}

	// The restored dir starts a server with the same id.
	srv, err := server.Open(server.Config{DataDir: dst, NoSync: true})
	if err != nil {
		t.Fatalf("serve the restored dir: %v", err)
	}
	if srv.ServerID() != id {
		t.Errorf("restored server id %q, want %q", srv.ServerID(), id)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
	if !strings.Contains(stderr.String(), "verifying") {
		t.Errorf("no progress on stderr: %q", stderr.String())
	}
}

// verbTree is a command tree of the two verbs alone.
type verbTree struct {
	Backup  BackupCmd  `cmd:""`
	Restore RestoreCmd `cmd:""`
}

func parseVerbs(t *testing.T, args ...string) (*verbTree, error) {
	t.Helper()
	var c verbTree
	parser, err := kong.New(&c, kong.Exit(func(int) {}), kong.Writers(io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	_, err = parser.Parse(args)
	return &c, err
}

// TestBackupRestoreFlags parses the two verbs' flags with kong, in a tree
// of their own.
func TestBackupRestoreFlags(t *testing.T) {
	c, err := parseVerbs(t, "backup", "--data-dir", "/srv/data", "--out", "/b/x.tar.zst")
	if err != nil {
		t.Fatal(err)
	}
	if c.Backup.DataDir != "/srv/data" || c.Backup.Out != "/b/x.tar.zst" {
		t.Errorf("backup flags %+v", c.Backup)
	}
	c, err = parseVerbs(t, "restore", "/b/x.tar.zst", "--data-dir", "/srv/new")
	if err != nil {
		t.Fatal(err)
	}
	if c.Restore.File != "/b/x.tar.zst" || c.Restore.DataDir != "/srv/new" {
		t.Errorf("restore flags %+v", c.Restore)
	}
	for _, args := range [][]string{
		{"backup", "--out", "x"},
		{"backup", "--data-dir", "d"},
		{"restore", "x"},
		{"restore", "--data-dir", "d"},
	} {
		if _, err := parseVerbs(t, args...); err == nil {
			t.Errorf("%v parsed; want a missing-flag error", args)
		}
	}
}
