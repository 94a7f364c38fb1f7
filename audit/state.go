package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
)

// errStop ends a scan early without an error.
var errStop = errors.New("audit: stop")

// StateAt returns the state as it was at t: the log replayed from seq 1
// into a fresh [projections.State] (snapshots are not used) up to, but not
// including, the first record whose time is after t, and the seq of the
// last record applied (0 if none). Replay stops at the first record after
// t even if later ones carry earlier times (a clock stepped back), because
// a record only applies on top of every record before it.
//
// The dump lists only the invites still live at t: spent and revoked ones
// are gone from the state anyway, and those that had expired by t are
// left out. Invite tokens are fingerprints (see [projections.RedactToken]) unless
// showTokens.
//
// The records replayed are verified as [DataDir.Events] verifies them; a
// break before t, or a record that does not apply to the state (wrapping
// [projections.ErrInvalidEvent]), is an error.
func (d *DataDir) StateAt(ctx context.Context, t time.Time, showTokens bool) (projections.StateDump, uint64, error) {
	atMs := t.UnixMilli()
	s := projections.New()
	err := d.scan(ctx, func(r eventlog.Record) error {
		if r.TimeMs > atMs {
			return errStop
		}
		return s.Apply(r.Seq, projections.Event{Type: r.Type, Data: r.Data, Actor: r.Actor, TimeMs: r.TimeMs})
	})
	if err != nil && !errors.Is(err, errStop) {
		return projections.StateDump{}, 0, fmt.Errorf("audit: replay %s: %w", d.dir, err)
	}
	dump := s.Dump()
	for i := range dump.Channels {
		ch := &dump.Channels[i]
		live := ch.Invites[:0]
		for _, inv := range ch.Invites {
			if inv.ExpiresAtMs != nil && atMs >= *inv.ExpiresAtMs {
				continue // expired at t (the server refuses it from that ms on)
			}
			if !showTokens {
				inv.Token = projections.RedactToken(inv.Token)
			}
			live = append(live, inv)
		}
		ch.Invites = live
	}
	return dump, s.LastSeq(), nil
}
