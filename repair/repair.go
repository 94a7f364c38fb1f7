package repair

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/conclave/conclave/atomicfile"
	"github.com/conclave/conclave/datadir"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
	"github.com/conclave/conclave/server"
)

// Repair is a data dir opened for repair: it holds the dir's LOCK until
// Close. Not safe for concurrent use.
type Repair struct {
	data *datadir.Dir
}

// Open checks that dir is a conclave data dir and takes its LOCK. A
// server holding it makes Open fail with datadir's error naming that
// server's pid and host.
func Open(dir string) (*Repair, error) {
	if _, err := datadir.OpenReadOnly(dir); err != nil {
		return nil, err
	}
	d, err := datadir.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("repair needs the data dir to itself: %w", err)
	}
	return &Repair{data: d}, nil
}

// Close releases the lock.
func (r *Repair) Close() error { return r.data.Close() }

// Plan is what [Repair.Inspect] found and what [Repair.Apply] would do.
type Plan struct {
	// History lists the history regions to set aside, in order: damaged
	// records, and the messages of channels an event-log cut removes.
	History []eventlog.PlainRegion
	// Cut is the event-log cut, nil when events/ is intact.
	Cut *Cut
}

// Empty reports whether there is nothing to repair.
func (p *Plan) Empty() bool { return len(p.History) == 0 && p.Cut == nil }

// Cut describes cutting the event log at its first damaged record.
type Cut struct {
	// Break is the first damage; the log keeps the records before
	// Break.Seq.
	Break *eventlog.SegmentError
	// Events lists every event from Break.Seq on, in seq order, damaged
	// ones included: all of them are set aside, and undone.
	Events []Event
	// Snapshots are the snapshot files (base names) that cover an event
	// set aside; they are set aside too.
	Snapshots []string
}

// Seq returns the first seq set aside.
func (c *Cut) Seq() uint64 { return c.Break.Seq }

// Event is one event an event-log cut sets aside.
type Event struct {
	Seq uint64
	// Damage is set for a record that cannot be read (its type, actor and
	// time are unknown).
	Damage *eventlog.SegmentError
	TimeMs int64
	Actor  string
	Type   string
	Fields projections.Fields
}

// Security reports whether cutting the event undoes a security measure.
func (e *Event) Security() bool { return Security(e.Type) }

// Security reports whether an event of type typ is a security measure —
// a ban, an ACL removal, a machine revocation, a user removal, an
// approver removal, an invite revocation or a visibility change — which a
// cut of the event log undoes: the banned user, the revoked machine, the
// revoked invite work again.
func Security(typ string) bool {
	switch typ {
	case projections.EvBanned, projections.EvACLRemoved, projections.EvMachineRemoved,
		projections.EvUserRemoved, projections.EvApproverRemoved, projections.EvInviteRevoked,
		projections.EvVisibilityChanged:
		return true
	}
	return false
}

// Inspect finds the damage in history/ and events/ and returns what
// Apply would do. It writes nothing. A bad end of a log's last segment
// that a server cuts itself as a torn write on its next start is not
// damage.
func (r *Repair) Inspect(ctx context.Context) (*Plan, error) {
	p := &Plan{}
	cut, err := r.inspectEvents(ctx)
	if err != nil {
		return nil, err
	}
	p.Cut = cut
	if p.History, err = r.history(true, cut); err != nil {
		return nil, err
	}
	return p, nil
}

func (r *Repair) inspectEvents(ctx context.Context) (*Cut, error) {
	rd, err := eventlog.OpenReader(r.data.Events())
	if err != nil {
		return nil, err
	}
	opts := &eventlog.ScanOptions{Tail: eventlog.TailTorn}
	err = rd.ScanWith(opts, func(eventlog.Record) error { return ctx.Err() })
	var brk *eventlog.SegmentError
	if !errors.As(err, &brk) {
		return nil, err // nil: intact
	}
	cut := &Cut{Break: brk}
	// Read on past the damage, listing every event from the cut on.
	var damage []*eventlog.SegmentError
	opts.OnDamage = func(se *eventlog.SegmentError) error {
		damage = append(damage, se)
		return nil
	}
	err = rd.ScanWith(opts, func(rec eventlog.Record) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if rec.Seq >= brk.Seq {
			cut.Events = append(cut.Events, Event{Seq: rec.Seq, TimeMs: rec.TimeMs, Actor: rec.Actor, Type: rec.Type,
				Fields: projections.DecodeFields(rec.Data)})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, se := range damage {
		for seq := se.Seq; seq <= max(se.Seq, se.Last); seq++ {
			if seq >= brk.Seq {
				cut.Events = append(cut.Events, Event{Seq: seq, Damage: se})
			}
		}
	}
	slices.SortFunc(cut.Events, func(a, b Event) int { return cmpSeq(a.Seq, b.Seq) })
	snaps, err := eventlog.ListSnapshots(r.data.Snapshots())
	if err != nil {
		return nil, err
	}
	for _, path := range snaps {
		if seq, ok := eventlog.ParseSnapshotName(filepath.Base(path)); ok && seq >= brk.Seq {
			cut.Snapshots = append(cut.Snapshots, filepath.Base(path))
		}
	}
	return cut, nil
}

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// history finds (dry) or replaces the history regions to set aside.
func (r *Repair) history(dry bool, cut *Cut) ([]eventlog.PlainRegion, error) {
	dir := r.data.History()
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	opts := &eventlog.RewriteOptions{Tail: eventlog.TailTorn, DryRun: dry,
		Fill: func(uint64) []byte { return server.HistoryGapRecord(0) }}
	if cut != nil {
		// Channel ids are the seq of their channel_created event.
		opts.Drop = func(_ uint64, data []byte) bool {
			cid, ok := server.HistoryRecordChannel(data)
			return ok && cid >= cut.Seq()
		}
	}
	return eventlog.RewritePlain(dir, opts)
}

// Apply carries out plan, which Inspect returned on this Repair, and
// returns the quarantine folder it moved everything set aside into
// (DIR/quarantine/<now, UTC>/), with a REPAIR.txt holding report. It
// writes the set-aside bytes there before it changes any log.
func (r *Repair) Apply(plan *Plan, now time.Time, report string) (string, error) {
	if plan.Empty() {
		return "", nil
	}
	q := filepath.Join(r.data.Quarantine(), now.UTC().Format("20060102T150405.000Z"))
	for _, sub := range []string{"", datadir.HistoryDir, datadir.EventsDir, datadir.SnapshotsDir} {
		if err := os.MkdirAll(filepath.Join(q, sub), 0o700); err != nil {
			return "", fmt.Errorf("repair: create quarantine: %w", err)
		}
	}
	if err := atomicfile.CreateNew(filepath.Join(q, "REPAIR.txt"), []byte(report), 0o600, false); err != nil {
		return "", fmt.Errorf("repair: write quarantine report: %w", err)
	}
	// History first: keep the bytes, then rewrite the segments.
	for _, reg := range plan.History {
		name := fmt.Sprintf("%s.seq-%d", reg.Segment, reg.First)
		if reg.Last > reg.First {
			name += fmt.Sprintf("-%d", reg.Last)
		}
		if err := atomicfile.CreateNew(filepath.Join(q, datadir.HistoryDir, name), reg.Bytes, 0o600, false); err != nil {
			return q, fmt.Errorf("repair: keep history seq %d: %w", reg.First, err)
		}
	}
	if err := syncDirs(q, filepath.Join(q, datadir.HistoryDir)); err != nil {
		return q, err
	}
	if len(plan.History) > 0 {
		done, err := r.history(false, plan.Cut)
		if err != nil {
			return q, fmt.Errorf("repair: history: %w", err)
		}
		if len(done) != len(plan.History) {
			return q, fmt.Errorf("repair: history changed since it was inspected (%d regions, %d planned)", len(done), len(plan.History))
		}
	}
	if plan.Cut != nil {
		if err := r.cutEvents(plan.Cut, q); err != nil {
			return q, err
		}
	}
	return q, nil
}

// cutEvents moves the snapshots that cover set-aside events and the
// event log from the cut on into the quarantine folder q.
func (r *Repair) cutEvents(cut *Cut, q string) error {
	for _, name := range cut.Snapshots {
		if err := os.Rename(filepath.Join(r.data.Snapshots(), name), filepath.Join(q, datadir.SnapshotsDir, name)); err != nil {
			return fmt.Errorf("repair: set aside snapshot %s: %w", name, err)
		}
	}
	if err := syncDirs(r.data.Snapshots(), filepath.Join(q, datadir.SnapshotsDir)); err != nil {
		return err
	}
	segs, err := eventlog.ListSegments(r.data.Events())
	if err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	qe := filepath.Join(q, datadir.EventsDir)
	var keep *eventlog.Segment // the segment cut in two
	var later []eventlog.Segment
	for i, s := range segs {
		switch {
		case s.Name == cut.Break.Segment:
			keep = &segs[i]
		case keep != nil:
			later = append(later, s)
		}
	}
	if keep == nil {
		return fmt.Errorf("repair: segment %s of the break is gone", cut.Break.Segment)
	}
	data, err := os.ReadFile(keep.Path)
	if err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	off := max(cut.Break.Offset, 0)
	if off > int64(len(data)) {
		return fmt.Errorf("repair: segment %s is shorter than the break at byte %d", keep.Name, off)
	}
	if err := atomicfile.CreateNew(filepath.Join(qe, fmt.Sprintf("%s.from-seq-%d", keep.Name, cut.Seq())), data[off:], 0o600, false); err != nil {
		return fmt.Errorf("repair: keep the cut bytes: %w", err)
	}
	if err := syncDirs(qe); err != nil {
		return err
	}
	// Later segments first: a crash half-way leaves a log that ends at
	// the damaged record, which a server's open cuts as a torn tail.
	for i := len(later) - 1; i >= 0; i-- {
		s := later[i]
		if err := os.Rename(s.Path, filepath.Join(qe, s.Name)); err != nil {
			return fmt.Errorf("repair: set aside segment %s: %w", s.Name, err)
		}
	}
	if err := syncDirs(r.data.Events(), qe); err != nil {
		return err
	}
	if off == 0 {
		err = os.Remove(keep.Path) // its bytes are in the quarantine
	} else {
		err = atomicfile.WriteFile(keep.Path, data[:off], 0o640)
	}
	if err != nil {
		return fmt.Errorf("repair: cut segment %s: %w", keep.Name, err)
	}
	return syncDirs(r.data.Events())
}

func syncDirs(dirs ...string) error {
	for _, d := range dirs {
		if err := atomicfile.SyncDir(d); err != nil {
			return fmt.Errorf("repair: %w", err)
		}
	}
	return nil
}

// Describe returns a one-line summary of an event's target fields.
func (e *Event) Describe() string {
	f := e.Fields
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("user", f.User)
	add("machine", f.Machine)
	add("channel", f.Channel)
	add("new_name", f.NewName)
	add("visibility", f.Visibility)
	add("token", projections.RedactToken(f.Token))
	add("target", f.Target)
	return strings.Join(parts, " ")
}
