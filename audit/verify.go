package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/conclave/conclave/datadir"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
)

// VerifyReport is what [DataDir.Verify] found. The data dir is intact when
// [VerifyReport.OK]; [VerifyReport.Err] describes the first problem.
type VerifyReport struct {
	// Records is the number of event-log records verified, from seq 1:
	// all of them when Break is nil.
	Records uint64
	// LastHash is the hash of the last record verified (zero if none).
	LastHash [32]byte
	// Break is the first damage in events/ — a checksum mismatch, a broken
	// hash chain, a malformed record, a gap between segments, a record of a
	// newer format — naming the segment file and seq; nil if the whole log
	// verified. Records after it were not read.
	Break *eventlog.SegmentError
	// Invalid is the first record that verified but does not apply to the
	// state replayed before it (it wraps [projections.ErrInvalidEvent] and
	// names the seq): the server would refuse to start. Nil if every
	// record applied.
	Invalid error
	// InvalidSeq is the seq of the Invalid record, 0 if none.
	InvalidSeq uint64
	// Snapshots has one entry per snapshot file in snapshots/, oldest
	// first.
	Snapshots []SnapshotCheck
	// HistoryChecked reports whether history/ was verified (it is, when
	// Verify returns without an error).
	HistoryChecked bool
	// History is what the check of history/ found.
	History HistoryCheck
}

// HistoryCheck is the outcome of checking history/, the channel history:
// each record's checksum, and that the segments join up.
type HistoryCheck struct {
	// Records is the number of intact records; First and Last the indexes
	// (seqs) of the first and last record on disk, First > Last when it
	// is empty.
	Records     uint64
	First, Last uint64
	// Damaged lists each damaged record, or run of records hidden by one
	// unreadable frame (Last), with its segment file, seq and byte offset,
	// in order. A server serves the history around them (readers get a
	// gap); conclave repair sets them aside. A bad end of the last segment
	// that a server would cut as a torn write on its next start is not
	// damage.
	Damaged []*eventlog.SegmentError
}

// SnapshotStatus is the outcome of checking one snapshot file.
type SnapshotStatus string

// Snapshot statuses.
const (
	// SnapshotOK: intact, of this schema, its hash is the hash of the
	// record at its seq, and its state equals the log replayed to that seq.
	SnapshotOK SnapshotStatus = "ok"
	// SnapshotUnusable: a server would skip it at startup — unreadable,
	// damaged (zstd, header, CRC), a seq disagreeing with its name, another
	// schema, or a state that does not decode.
	SnapshotUnusable SnapshotStatus = "unusable"
	// SnapshotMismatch: intact, but its hash is not the hash of the record
	// at its seq, or its state differs from the replayed log.
	SnapshotMismatch SnapshotStatus = "mismatch"
	// SnapshotAhead: it covers records beyond the end of the log, which
	// the log has lost.
	SnapshotAhead SnapshotStatus = "ahead"
	// SnapshotUnchecked: its seq lies beyond the first break in the log or
	// after an invalid record, so there is nothing trusted to compare with.
	SnapshotUnchecked SnapshotStatus = "unchecked"
)

// SnapshotCheck is the outcome for one snapshot file.
type SnapshotCheck struct {
	File   string // base name, snap-<seq>.zst
	Seq    uint64 // the last record it covers, from its name
	Status SnapshotStatus
	Detail string // why, for every status but SnapshotOK
}

// OK reports whether every record verified and applied, every snapshot
// is [SnapshotOK] and no history record is damaged.
func (r *VerifyReport) OK() bool { return r.Err() == nil }

// Err returns the first problem as a one-line error naming where it is —
// the break's segment and seq first, then an invalid record, then the
// first bad snapshot — or nil if there is none. The error of a break wraps
// the *[eventlog.SegmentError].
func (r *VerifyReport) Err() error {
	if r.Break != nil {
		return &breakError{r.Break}
	}
	if r.Invalid != nil {
		return fmt.Errorf("event log record seq %d does not apply: %w", r.InvalidSeq, r.Invalid)
	}
	for _, s := range r.Snapshots {
		switch s.Status {
		case SnapshotOK, SnapshotUnchecked:
		default:
			return fmt.Errorf("snapshot %s/%s (seq %d) is %s: %s", datadir.SnapshotsDir, s.File, s.Seq, s.Status, s.Detail)
		}
	}
	if d := r.History.Damaged; len(d) > 0 {
		more := ""
		if n := damagedRecords(d); n > damagedRecords(d[:1]) {
			more = fmt.Sprintf(" (%d damaged history records in all)", n)
		}
		return fmt.Errorf("history record damaged at %s%s", HistoryDamageText(d[0]), more)
	}
	return nil
}

// HistoryDamageText names one damaged history record or run of records:
// "history/SEGMENT, seq N (byte OFFSET): what is wrong", or "seq N-M".
func HistoryDamageText(se *eventlog.SegmentError) string {
	seq := fmt.Sprintf("seq %d", se.Seq)
	if se.Last > se.Seq {
		seq = fmt.Sprintf("seq %d-%d", se.Seq, se.Last)
	}
	at := ""
	if se.Offset >= 0 {
		at = fmt.Sprintf(" (byte %d)", se.Offset)
	}
	return fmt.Sprintf("%s/%s, %s%s: %v", datadir.HistoryDir, se.Segment, seq, at, se.Err)
}

// DamagedRecords returns the number of damaged records.
func (h *HistoryCheck) DamagedRecords() uint64 { return damagedRecords(h.Damaged) }

// damagedRecords counts the records a list of damage covers.
func damagedRecords(d []*eventlog.SegmentError) uint64 {
	n := uint64(0)
	for _, se := range d {
		n += max(se.Last, se.Seq) - se.Seq + 1
	}
	return n
}

// VerifyHistory checks history/ without writing to it: every record's
// checksum and the joins between its segments, going on past damage (see
// [HistoryCheck]). The error is for a check that could not run.
func (d *DataDir) VerifyHistory(ctx context.Context) (HistoryCheck, error) {
	hc := HistoryCheck{First: 1}
	rd, err := eventlog.OpenPlainReader(d.data.History())
	if errors.Is(err, os.ErrNotExist) {
		return hc, nil // a data dir the server has not started in yet
	}
	if err != nil {
		return hc, err
	}
	opts := &eventlog.ScanOptions{Tail: eventlog.TailTorn, OnDamage: func(se *eventlog.SegmentError) error {
		hc.Damaged = append(hc.Damaged, se)
		hc.Last = max(hc.Last, se.Seq, se.Last)
		return nil
	}}
	first := true
	err = rd.Scan(opts, func(idx uint64, _ []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if first {
			hc.First, first = idx, false
		}
		hc.Records++
		hc.Last = idx
		return nil
	})
	if len(hc.Damaged) > 0 && hc.Damaged[0].Seq < hc.First {
		hc.First = hc.Damaged[0].Seq
	}
	if hc.Records == 0 && len(hc.Damaged) == 0 {
		hc.First, hc.Last = 1, 0
	}
	return hc, err
}

// breakError names a break in the event log: segment, seq, byte offset
// and what is wrong.
type breakError struct{ se *eventlog.SegmentError }

func (e *breakError) Error() string {
	at := ""
	if e.se.Offset >= 0 {
		at = fmt.Sprintf(" (byte %d)", e.se.Offset)
	}
	return fmt.Sprintf("event log broken at segment %s/%s, seq %d%s: %v", datadir.EventsDir, e.se.Segment, e.se.Seq, at, e.se.Err)
}

func (e *breakError) Unwrap() error { return e.se }

// Verify checks the data dir without writing to it: every record of
// events/ (checksum, format, seq, the joins between segments and the hash
// chain, as [eventlog.Reader.Verify] does), that each record applies to
// the state replayed before it, and each snapshot in snapshots/ — that a
// server could load it (the checks of [eventlog.LoadNewestSnapshot]), that
// its hash is the hash of the log's record at its seq, and that its state
// is the log replayed to that seq.
//
// Damage is reported in the VerifyReport, not as an error; the error is
// for a check that could not run (an unreadable file, ctx ending). The log
// may grow while Verify runs: it verifies what it finds, and an
// incomplete record at the very end is the end of the log.
func (d *DataDir) Verify(ctx context.Context) (rep VerifyReport, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("audit: verify %s: %w", d.dir, err)
		}
	}()
	// Load the snapshots first: the log they cover is then on disk, and
	// one the server prunes meanwhile is already read.
	snaps, err := d.loadSnapshots()
	if err != nil {
		return rep, err
	}
	rep.Snapshots = make([]SnapshotCheck, len(snaps))
	pending := map[uint64][]int{} // seq → indexes into snaps still to compare
	for i, s := range snaps {
		rep.Snapshots[i] = s.check
		if s.check.Status == "" {
			pending[s.check.Seq] = append(pending[s.check.Seq], i)
		}
	}
	state := projections.New()
	compare := func(seq uint64, hash [32]byte) {
		for _, i := range pending[seq] {
			c := &rep.Snapshots[i]
			switch {
			case snaps[i].hash != hash:
				c.Status, c.Detail = SnapshotMismatch, fmt.Sprintf("its hash %x… is not the hash %x… of record seq %d", snaps[i].hash[:6], hash[:6], seq)
			case rep.Invalid != nil:
				c.Status, c.Detail = SnapshotUnchecked, fmt.Sprintf("record seq %d, at or before it, does not apply", rep.InvalidSeq)
			case !reflect.DeepEqual(*snaps[i].dump, state.Dump()):
				c.Status, c.Detail = SnapshotMismatch, fmt.Sprintf("its state differs from the log replayed to seq %d", seq)
			default:
				c.Status = SnapshotOK
			}
		}
		delete(pending, seq)
	}
	compare(0, [32]byte{})
	err = d.scan(ctx, func(r eventlog.Record) error {
		rep.Records, rep.LastHash = r.Seq, r.Hash
		if rep.Invalid == nil {
			ev := projections.Event{Type: r.Type, Data: r.Data, Actor: r.Actor, TimeMs: r.TimeMs}
			if err := state.Apply(r.Seq, ev); err != nil {
				rep.Invalid, rep.InvalidSeq = err, r.Seq
			}
		}
		if len(pending[r.Seq]) > 0 {
			compare(r.Seq, r.Hash)
		}
		return nil
	})
	var se *eventlog.SegmentError
	switch {
	case errors.As(err, &se):
		rep.Break = se
	case err != nil:
		return rep, err
	}
	if rep.History, err = d.VerifyHistory(ctx); err != nil {
		return rep, fmt.Errorf("history: %w", err)
	}
	rep.HistoryChecked = true
	for _, idx := range pending {
		for _, i := range idx {
			c := &rep.Snapshots[i]
			if rep.Break != nil {
				c.Status, c.Detail = SnapshotUnchecked, fmt.Sprintf("it lies beyond the break at seq %d", rep.Break.Seq)
			} else {
				c.Status, c.Detail = SnapshotAhead, fmt.Sprintf("it covers up to seq %d but the log ends at seq %d", c.Seq, rep.Records)
			}
		}
	}
	return rep, nil
}

// loadedSnapshot is one snapshot file after loading: check.Status is set
// if it is already decided (unusable), empty if it remains to be compared
// with the log.
type loadedSnapshot struct {
	check SnapshotCheck
	hash  [32]byte
	dump  *projections.StateDump
}

// loadSnapshots loads every snapshot file of the data dir, oldest first,
// with exactly the checks a server applies (eventlog.ReadSnapshot). A
// file that disappears meanwhile (pruned by a live server) is left out.
func (d *DataDir) loadSnapshots() ([]loadedSnapshot, error) {
	paths, err := eventlog.ListSnapshots(d.data.Snapshots())
	if err != nil || len(paths) == 0 {
		return nil, err
	}
	var out []loadedSnapshot
	for _, path := range paths {
		name := filepath.Base(path)
		seq, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, "snap-"), ".zst"), 10, 64)
		if err != nil {
			continue // ListSnapshots lists only snap-<20 digits>.zst
		}
		snap, err := eventlog.ReadSnapshot(path, projections.SchemaVersion)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		ls := loadedSnapshot{check: SnapshotCheck{File: name, Seq: seq}}
		if err != nil {
			ls.check.Status, ls.check.Detail = SnapshotUnusable, err.Error()
		} else if st, err := projections.UnmarshalSnapshot(snap.Data); err != nil {
			ls.check.Status, ls.check.Detail = SnapshotUnusable, err.Error()
		} else {
			dump := st.Dump()
			ls.hash, ls.dump = snap.Hash, &dump
		}
		out = append(out, ls)
	}
	return out, nil
}
