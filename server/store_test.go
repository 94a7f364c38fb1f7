package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conclave/conclave/protocol"
)

func TestStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	env := newTestEnv(t, Config{DataDir: dir, SnapshotEvery: 3})
	key := newKey(t)
	a, _ := env.handshake(key, "s", &protocol.Frame{Username: "aaron", Machine: "wa"})
	laptop := newKey(t)
	a.ok(&protocol.Frame{Type: protocol.TMachineAdd, Machine: "laptop", Pubkey: pubOf(laptop)})
	for _, ch := range []string{"ops", "dev", "random"} {
		a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: ch})
	}
	id := env.srv.ServerID()
	env.close()
	snaps, _ := filepath.Glob(filepath.Join(dir, "snapshots", "snap-*.zst"))
	if len(snaps) == 0 {
		t.Fatal("no snapshot written")
	}

	env2 := newTestEnv(t, Config{DataDir: dir})
	if env2.srv.ServerID() != id {
		t.Fatalf("server id changed across restart: %q -> %q", id, env2.srv.ServerID())
	}
	a2 := env2.login(key, "s")
	l := a2.ok(&protocol.Frame{Type: protocol.TListChannels})
	if len(l.Channels) != 3 {
		t.Fatalf("channels after restart = %+v", l.Channels)
	}
	env2.login(laptop, "x")
}

func TestSecondServerOnLockedDataDirFails(t *testing.T) {
	dir := t.TempDir()
	newTestEnv(t, Config{DataDir: dir})
	_, err := Open(Config{DataDir: dir})
	if err == nil || !strings.Contains(err.Error(), "in use by pid") {
		t.Fatalf("second open = %v, want a lock error naming the holder", err)
	}
}

func TestRecoveryWithoutSnapshotReplaysLog(t *testing.T) {
	dir := t.TempDir()
	env := newTestEnv(t, Config{DataDir: dir})
	a := env.register("aaron", "wa", "s")
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	env.close()
	// Remove the shutdown snapshot: recovery must replay the log in full.
	snaps, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*"))
	for _, s := range snaps {
		os.Remove(s)
	}
	env2 := newTestEnv(t, Config{DataDir: dir})
	b := env2.register("bob", "m", "s")
	if l := b.ok(&protocol.Frame{Type: protocol.TListChannels}); len(l.Channels) != 1 {
		t.Fatalf("channels = %+v", l.Channels)
	}
	env2.register2Fails(t, "aaron")
}

func (e *testEnv) register2Fails(t *testing.T, user string) {
	_, f := e.handshake(newKey(t), "s", &protocol.Frame{Username: user, Machine: "m"})
	if f.Code != protocol.CodeConflict {
		t.Fatalf("re-register %s after restart = %+v, want conflict", user, f)
	}
}

func TestEphemeralServer(t *testing.T) {
	env := newTestEnv(t, Config{Ephemeral: true})
	a := env.register("aaron", "wa", "s")
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "Config.DataDir is required") {
		t.Fatalf("New without data dir = %v", err)
	}
}

func TestFailedAppendRefusesBatchAndRecovers(t *testing.T) {
	dir := t.TempDir()
	var failing atomic.Bool
	env := newTestEnv(t, Config{DataDir: dir, failHook: func(string) error {
		if failing.Load() {
			return os.ErrPermission
		}
		return nil
	}})
	a := env.register("aaron", "wa", "s")
	failing.Store(true)
	r := a.req(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	if r.Type != protocol.TError || r.Code != protocol.CodeInternal {
		t.Fatalf("create during a failing disk = %+v", r)
	}
	failing.Store(false)
	if l := a.ok(&protocol.Frame{Type: protocol.TListChannels}); len(l.Channels) != 0 {
		t.Fatalf("a refused change is visible: %+v", l.Channels)
	}
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	env.srv.Shutdown(ctx)
	env2 := newTestEnv(t, Config{DataDir: dir})
	b := env2.register("bob", "m", "s")
	if l := b.ok(&protocol.Frame{Type: protocol.TListChannels}); len(l.Channels) != 1 {
		t.Fatalf("channels after restart = %+v", l.Channels)
	}
}

// A Recover whose context is done stops with the context's error, serves
// nothing and releases the data dir, which then opens with its state.
func TestRecoverStopsWhenContextIsDone(t *testing.T) {
	dir := t.TempDir()
	env := newTestEnv(t, Config{DataDir: dir})
	a := env.register("aaron", "wa", "s")
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	env.close()

	srv, err := New(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := srv.Recover(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Recover with a cancelled context = %v, want context.Canceled", err)
	}
	if srv.ready.Load() {
		t.Fatal("a cancelled Recover left the server ready")
	}
	env2 := newTestEnv(t, Config{DataDir: dir})
	if l := env2.login(a.key, "s").ok(&protocol.Frame{Type: protocol.TListChannels}); len(l.Channels) != 1 {
		t.Fatalf("channels after a cancelled Recover and a new one: %+v", l.Channels)
	}
}
