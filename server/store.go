package server

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/conclave/conclave/datadir"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
)

// keepSnaps is how many snapshot files the server keeps.
const keepSnaps = 3

// store is the durable side of a server: the data dir (with its lock), the
// event log and the snapshots. Only commitCommands appends.
type store struct {
	data   *datadir.Dir
	log    *eventlog.Log
	logger *slog.Logger

	snapSeq uint64 // seq covered by the newest snapshot
}

// openStore opens the data dir for writing (taking its lock, reading or
// creating its server id), opens the event log (repairing a torn tail) and
// rebuilds the state.
func openStore(ctx context.Context, dir string, opts *eventlog.Options, logger *slog.Logger) (*store, *projections.State, error) {
	data, err := datadir.Open(dir)
	if err != nil {
		return nil, nil, err
	}
	st := &store{data: data, logger: logger}
	ok := false
	defer func() {
		if !ok {
			st.close()
		}
	}()
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
	st.log, err = eventlog.Open(data.Events(), &o)
	if err != nil {
		return nil, nil, fmt.Errorf("open event log in %s: %w", dir, err)
	}
	state, err := st.rebuildFrom(ctx, start, snap, snapState, true)
	if err != nil {
		return nil, nil, err
	}
	ok = true
	return st, state, nil
}

// loadSnapshot returns the newest snapshot that loads and decodes, with
// its state, or nils; it logs each one it skips.
func (st *store) loadSnapshot() (*eventlog.Snapshot, *projections.State) {
	snap, err := eventlog.LoadNewestSnapshot(st.data.Snapshots(), projections.SchemaVersion, st.logger)
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
	return st.rebuildFrom(context.Background(), start, snap, state, logIt)
}

// replayCheckEvery is how many events a replay applies between looks at
// its context.
const replayCheckEvery = 4096

// rebuildFrom replays the log after snap (whose decoded state is
// snapState) or, with no usable snapshot, from the start. It stops with
// ctx's error once ctx is done.
func (st *store) rebuildFrom(ctx context.Context, start time.Time, snap *eventlog.Snapshot, snapState *projections.State, logIt bool) (*projections.State, error) {
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
		if replayed%replayCheckEvery == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		return state.Apply(r.Seq, projections.Event{Type: r.Type, Data: r.Data, Actor: r.Actor, TimeMs: r.TimeMs})
	})
	if err == nil {
		err = ctx.Err()
	}
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
	if err := eventlog.WriteSnapshot(st.data.Snapshots(), s, keepSnaps); err != nil {
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
	if cerr := st.data.Close(); err == nil {
		err = cerr
	}
	return err
}
