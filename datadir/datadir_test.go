package datadir

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenCreatesLayoutAndKeepsID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data")
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	id := d.ServerID()
	if id == "" {
		t.Fatal("no server id")
	}
	for _, sub := range []string{d.Events(), d.History(), d.Snapshots()} {
		if fi, err := os.Stat(sub); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v", sub, err)
		}
	}
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "is in use by pid ") {
		t.Errorf("second Open: got %v, want the lock holder named", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.ServerID() != id {
		t.Errorf("server id %q after reopening, want %q", d.ServerID(), id)
	}
	ro, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	got, raw, err := ro.ReadServerID()
	if err != nil || got != id || string(raw) != id+"\n" {
		t.Errorf("ReadServerID: %q %q %v, want %q", got, raw, err, id)
	}
}

func TestOpenReadOnlyRefuses(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o600)
	noEvents := filepath.Join(base, "noevents")
	os.MkdirAll(noEvents, 0o700)
	os.WriteFile(filepath.Join(noEvents, ServerIDFile), []byte("x\n"), 0o600)
	for _, tc := range []struct {
		name, path, reason string
	}{
		{"missing", filepath.Join(base, "nope"), "it does not exist"},
		{"a file", file, "it is not a directory"},
		{"empty dir", base, "no server-id file"},
		{"no events", noEvents, "no events directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OpenReadOnly(tc.path)
			want := tc.path + " is not a conclave data dir (" + tc.reason + ")"
			if err == nil || err.Error() != want || !errors.Is(err, ErrNotDataDir) {
				t.Errorf("got %v, want %q matching ErrNotDataDir", err, want)
			}
		})
	}
}

func TestReadServerIDDamaged(t *testing.T) {
	path := t.TempDir()
	os.MkdirAll(filepath.Join(path, EventsDir), 0o700)
	for _, b := range []string{"", "  \n", strings.Repeat("x", MaxServerIDLen+1)} {
		os.WriteFile(filepath.Join(path, ServerIDFile), []byte(b), 0o600)
		d, err := OpenReadOnly(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := d.ReadServerID(); err == nil || !strings.Contains(err.Error(), "is damaged") {
			t.Errorf("server id %q: got %v, want damaged", b, err)
		}
		if _, err := Open(path); err == nil {
			t.Errorf("server id %q: Open succeeded", b)
		}
	}
}
