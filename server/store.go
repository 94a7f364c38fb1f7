package server

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
)

// Data dir layout.
const (
	serverIDFile = "server-id"
	lockFile     = "LOCK"
	eventsDir    = "events"
	historyDir   = "history"
	snapshotsDir = "snapshots"
	keepSnaps    = 3
)

// store is the durable side of a server: the data dir, its lock, the event
// log and the snapshots. Only the writer goroutine appends.
type store struct {
	dir      string
	serverID string
	lock     *os.File
	log      *eventlog.Log
	logger   *slog.Logger

	snapSeq uint64 // seq covered by the newest snapshot
}

func newServerID() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate server id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// openStore takes the data dir's lock, reads or creates its server id,
// opens the event log (repairing a torn tail) and rebuilds the state.
func openStore(dir string, opts *eventlog.Options, logger *slog.Logger) (*store, *projections.State, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create data dir %s: %w", dir, err)
	}
	st := &store{dir: dir, logger: logger}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, nil, err
	}
	st.lock = lock
	ok := false
	defer func() {
		if !ok {
			st.close()
		}
	}()
	if st.serverID, err = loadServerID(dir); err != nil {
		return nil, nil, err
	}
	for _, sub := range []string{eventsDir, historyDir, snapshotsDir} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, nil, fmt.Errorf("create %s: %w", sub, err)
		}
	}
	// A snapshot that loads is trusted for the records it covers: damage
	// there is reported by audit verify but does not stop the server.
	o := eventlog.Options{}
	if opts != nil {
		o = *opts
	}
	start := time.Now()
	snap, snapState := st.loadSnapshot()
	if snap != nil {
		o.TrustedSeq, o.TrustedHash = snap.Seq, snap.Hash
	}
	st.log, err = eventlog.Open(filepath.Join(dir, eventsDir), &o)
	if err != nil {
		return nil, nil, fmt.Errorf("open event log in %s: %w", dir, err)
	}
	state, err := st.rebuildFrom(start, snap, snapState, true)
	if err != nil {
		return nil, nil, err
	}
	ok = true
	return st, state, nil
}

// loadSnapshot returns the newest snapshot that loads and decodes, with
// its state, or nils; it logs each one it skips.
func (st *store) loadSnapshot() (*eventlog.Snapshot, *projections.State) {
	snapDir := filepath.Join(st.dir, snapshotsDir)
	snap, err := eventlog.LoadNewestSnapshot(snapDir, projections.SchemaVersion, st.logger)
	if err != nil {
		st.logger.Warn("no usable snapshot; replaying the whole log", "err", err)
		return nil, nil
	}
	if snap == nil {
		return nil, nil
	}
	state, err := projections.UnmarshalSnapshot(snap.Data)
	if err != nil {
		st.logger.Warn("snapshot unusable, replaying the whole log", "file", snap.Path, "err", err)
		return nil, nil
	}
	return snap, state
}

// rebuild loads the newest usable snapshot and replays the log after it.
func (st *store) rebuild(logIt bool) (*projections.State, error) {
	start := time.Now()
	snap, state := st.loadSnapshot()
	return st.rebuildFrom(start, snap, state, logIt)
}

// rebuildFrom replays the log after snap (whose decoded state is
// snapState) or, with no usable snapshot, from the start.
func (st *store) rebuildFrom(start time.Time, snap *eventlog.Snapshot, snapState *projections.State, logIt bool) (*projections.State, error) {
	state := projections.New()
	var after uint64
	var prev [32]byte
	used := "none (full replay)"
	if snap != nil && snap.Seq <= st.log.LastSeq() {
		state, after, prev, used = snapState, snap.Seq, snap.Hash, filepath.Base(snap.Path)
		st.snapSeq = snap.Seq
	} else if snap != nil {
		st.logger.Warn("snapshot is ahead of the event log, replaying the whole log", "file", snap.Path, "snapshot_seq", snap.Seq, "log_seq", st.log.LastSeq())
	}
	replayed := 0
	err := st.log.Replay(after, prev, func(r eventlog.Record) error {
		replayed++
		return state.Apply(r.Seq, projections.Event{Type: r.Type, Data: r.Data, Actor: r.Actor, TimeMs: r.TimeMs})
	})
	if err != nil {
		if after > 0 {
			return nil, fmt.Errorf("replay event log after snapshot %s (trusted up to seq %d): %w", used, after, err)
		}
		return nil, fmt.Errorf("replay event log: %w", err)
	}
	if logIt {
		st.logger.Info("state recovered", "snapshot", used, "events_replayed", replayed,
			"last_seq", st.log.LastSeq(), "took", time.Since(start).Round(time.Microsecond).String())
	}
	return state, nil
}

// snapshot writes the state as a snapshot if it covers events the newest
// snapshot does not.
func (st *store) snapshot(state *projections.State) error {
	seq := state.LastSeq()
	if seq == 0 || seq == st.snapSeq {
		return nil
	}
	data, err := state.MarshalSnapshot()
	if err != nil {
		return fmt.Errorf("encode snapshot: %w", err)
	}
	rec, err := st.log.Read(seq)
	if err != nil {
		return fmt.Errorf("read event %d for snapshot: %w", seq, err)
	}
	return st.writeSnapshot(eventlog.Snapshot{Schema: projections.SchemaVersion, Seq: seq, Hash: rec.Hash, Data: data})
}

func (st *store) writeSnapshot(s eventlog.Snapshot) error {
	start := time.Now()
	if err := eventlog.WriteSnapshot(filepath.Join(st.dir, snapshotsDir), s, keepSnaps); err != nil {
		return fmt.Errorf("write snapshot at seq %d: %w", s.Seq, err)
	}
	st.snapSeq = s.Seq
	st.logger.Info("snapshot written", "seq", s.Seq, "bytes", len(s.Data), "took", time.Since(start).Round(time.Microsecond).String())
	return nil
}

func (st *store) close() error {
	var err error
	if st.log != nil {
		err = st.log.Close()
		st.log = nil
	}
	if st.lock != nil {
		st.lock.Close()
		st.lock = nil
	}
	return err
}

// lockDir takes an exclusive, non-blocking flock on DIR/LOCK and writes the
// holder's pid and host into it.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			h := strings.TrimSpace(string(holder))
			if h == "" {
				h = "another process"
			}
			return nil, fmt.Errorf("data dir %s is in use by %s (another conclave serve holds %s)", dir, h, lockFile)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	host, _ := os.Hostname()
	f.Truncate(0)
	f.WriteAt([]byte("pid "+strconv.Itoa(os.Getpid())+" on "+host+"\n"), 0)
	return f, nil
}

// loadServerID reads DIR/server-id, creating it (atomically) on first use.
func loadServerID(dir string) (string, error) {
	path := filepath.Join(dir, serverIDFile)
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if id == "" || len(id) > 128 {
			return "", fmt.Errorf("server id file %s is damaged", path)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read server id: %w", err)
	}
	id, err := newServerID()
	if err != nil {
		return "", err
	}
	tmp := path + ".tmp"
	if err := writeFileSync(tmp, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("write server id: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("write server id: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return "", err
	}
	return id, nil
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}
