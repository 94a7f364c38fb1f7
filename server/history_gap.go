package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/conclave/conclave/datadir"
	"github.com/conclave/conclave/eventlog"
)

// The gap rule. Every history seq, once numbered, is either a message of
// one channel or a gap: a seq whose post was refused after it was numbered
// (it may have reached subscribers, so its number is never reused), or a
// record damaged on disk. A gap belongs to no channel: on disk it is a
// record of channel gapChannel (a refused post's, written by append; a
// damaged one's, written by conclave repair from [HistoryGapRecord]), and
// in memory it is in no channel's index. A reader meets it as it meets the
// seqs of other channels, skipped in every page; it counts as settled, so
// nobody waits for it. The server never guesses a damaged record's channel.

// gapChannel is the channel id of gap records; channel ids start at 1.
const gapChannel = 0

// HistoryGapRecord returns the history record that stands for a seq with
// no message (see the gap rule above): what the server writes for a post
// it refused after numbering it, and what conclave repair writes in place
// of a damaged record it sets aside. tsMs is its time; 0 is fine, as gap
// records take no part in retention.
func HistoryGapRecord(tsMs int64) []byte {
	b, _ := json.Marshal(histRecord{CID: gapChannel, TsMs: tsMs})
	return b
}

// HistoryRecordChannel returns the channel id of a history record's
// data (gapChannel, 0, for a gap record); ok is false if it does not
// decode. Channel ids are the seq of the channel's channel_created event.
func HistoryRecordChannel(data []byte) (cid uint64, ok bool) {
	var r struct {
		CID *uint64 `json:"cid"`
	}
	if json.Unmarshal(data, &r) != nil || r.CID == nil {
		return 0, false
	}
	return *r.CID, true
}

// load scans the history log in dir from its first record, calling fn
// for each record that decodes. A damaged record — failing its checksum,
// hidden by a damaged frame, or not decoding — is a gap (see damaged); the
// scan goes on past it.
func (h *history) load(dir string, fn func(idx uint64, r *histRecord)) error {
	rd, err := eventlog.OpenPlainReader(dir)
	if err != nil {
		return err
	}
	opts := &eventlog.ScanOptions{OnDamage: func(se *eventlog.SegmentError) error {
		h.damaged(se)
		return nil
	}}
	return rd.Scan(opts, func(idx uint64, data []byte) error {
		var r histRecord
		if err := json.Unmarshal(data, &r); err != nil {
			h.damaged(&eventlog.SegmentError{Segment: segmentOf(dir, idx), Seq: idx, Offset: -1,
				Err: fmt.Errorf("%w: record does not decode: %w", eventlog.ErrCorrupt, err)})
			return nil
		}
		fn(idx, &r)
		return nil
	})
}

// segmentOf names the segment file of dir that holds entry idx, or "?".
func segmentOf(dir string, idx uint64) string {
	name := "?"
	segs, _ := eventlog.ListSegments(dir)
	for _, s := range segs {
		if s.Index <= idx {
			name = s.Name
		}
	}
	return name
}

// damaged records damage to one history record, or to a run of them
// (se.Last), found at start or when a page reads it: one log line naming
// the file and seq, and the damaged-records metric. Each seq is counted
// once.
func (h *history) damaged(se *eventlog.SegmentError) {
	last := max(se.Last, se.Seq)
	h.gapMu.Lock()
	fresh := uint64(0)
	for seq := se.Seq; seq <= last; seq++ {
		if !h.broken[seq] {
			h.broken[seq] = true
			fresh++
		}
	}
	h.gapMu.Unlock()
	if fresh == 0 {
		return
	}
	h.srv.metrics.historyDamaged.Add(int64(fresh))
	attrs := []any{"file", filepath.Join(datadir.HistoryDir, se.Segment), "seq", se.Seq}
	if se.Last > se.Seq {
		attrs = append(attrs, "last_seq", se.Last)
	}
	if se.Offset >= 0 {
		attrs = append(attrs, "offset", se.Offset)
	}
	attrs = append(attrs, "err", se.Err)
	h.srv.log.Error("damaged history record; readers get a gap there (conclave repair sets it aside)", attrs...)
}

// readGap reports whether err, from reading record seq, is damage on
// disk: then the record is a gap (recorded with damaged), and the page
// goes on without it.
func (h *history) readGap(seq uint64, err error) bool {
	var se *eventlog.SegmentError
	if !errors.As(err, &se) {
		return false
	}
	d := *se
	if d.Seq != seq || d.Last != 0 {
		d.Seq, d.Last = seq, 0
	}
	h.damaged(&d)
	return true
}
