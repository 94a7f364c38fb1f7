package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
	"github.com/conclave/conclave/protocol"
)

// Event is one record of the event log as the audit trail shows it.
type Event struct {
	Seq   uint64    `json:"seq"`
	Time  time.Time `json:"time"`  // the record's time, UTC, millisecond precision
	Actor string    `json:"actor"` // "user/machine/session" or "server"
	Type  string    `json:"type"`  // e.g. "channel_created" (projections.Ev*)
	// Target summarises what the event acted on, for people: "user alice",
	// "channel ops", "alice/laptop", "invite abc123… on ops", "bob on ops".
	Target string `json:"target"`
	// Data is the record's JSON body, compacted, with an invite token
	// replaced by its fingerprint unless Filter.ShowTokens. A body that is
	// not JSON is given as a JSON string.
	Data json.RawMessage `json:"data"`
}

// Filter selects events. The zero Filter selects every event and hides
// invite tokens. All set conditions must hold.
type Filter struct {
	// Since and Until bound the event time, both inclusive; zero means
	// unbounded. Times are compared at millisecond precision.
	Since, Until time.Time
	// Actor selects events by who caused them: a user name matches the
	// user part of the actor path, "server" the server itself, and a
	// longer path ("alice/laptop" or "alice/laptop/cli-1") a prefix of it.
	Actor string
	// Channel selects events whose data names that channel, including
	// renames from and to it.
	Channel string
	// Type selects events of one type, or of any of a comma-separated list
	// ("invite_created,invite_redeemed").
	Type string
	// ShowTokens shows invite tokens in full.
	ShowTokens bool
}

// EventTypes returns every event type this version knows, in the order
// they were introduced.
func EventTypes() []string {
	return []string{
		projections.EvUserRegistered, projections.EvMachineAdded, projections.EvMachineRemoved,
		projections.EvUserRemoved, projections.EvChannelCreated, projections.EvChannelDeleted,
		projections.EvChannelRenamed, projections.EvVisibilityChanged, projections.EvACLAdded,
		projections.EvACLRemoved, projections.EvInviteCreated, projections.EvInviteRedeemed,
		projections.EvInviteRevoked, projections.EvInviteExpired, projections.EvBanned,
		projections.EvUnbanned, projections.EvKicked, projections.EvApproverAdded,
		projections.EvApproverRemoved,
	}
}

// Events calls fn for each event that f selects, in log order. It reads
// and verifies the whole log (checksums and hash chain), also past
// f.Until, and stops at the first break with an error wrapping a
// *[eventlog.SegmentError] that names the segment and seq; fn has then
// seen every event before the break. An error from fn, or ctx ending,
// stops it too and is returned wrapped.
func (d *DataDir) Events(ctx context.Context, f Filter, fn func(Event) error) error {
	var types []string
	if f.Type != "" {
		for t := range strings.SplitSeq(f.Type, ",") {
			types = append(types, strings.TrimSpace(t))
		}
	}
	err := d.scan(ctx, func(r eventlog.Record) error {
		if !f.Since.IsZero() && r.TimeMs < f.Since.UnixMilli() ||
			!f.Until.IsZero() && r.TimeMs > f.Until.UnixMilli() ||
			types != nil && !slices.Contains(types, r.Type) ||
			f.Actor != "" && !actorMatches(r.Actor, f.Actor) {
			return nil
		}
		b := projections.DecodeFields(r.Data)
		if f.Channel != "" && b.Channel != f.Channel &&
			(r.Type != projections.EvChannelRenamed || b.NewName != f.Channel) {
			return nil
		}
		return fn(Event{
			Seq:    r.Seq,
			Time:   time.UnixMilli(r.TimeMs).UTC(),
			Actor:  r.Actor,
			Type:   r.Type,
			Target: target(r.Type, b, f.ShowTokens),
			Data:   eventData(r.Data, f.ShowTokens),
		})
	})
	if err != nil {
		return fmt.Errorf("audit: read events of %s: %w", d.dir, err)
	}
	return nil
}

// actorMatches reports whether an event's actor path matches the --actor
// filter want (see Filter.Actor).
func actorMatches(actor, want string) bool {
	user, _, _ := strings.Cut(actor, "/")
	return user == want || actor == want || strings.HasPrefix(actor, want+"/")
}

// target summarises what an event acted on.
func target(typ string, b projections.Fields, showTokens bool) string {
	tok := b.Token
	if !showTokens {
		tok = projections.RedactToken(tok)
	}
	switch typ {
	case projections.EvUserRegistered:
		if b.Machine != "" {
			return fmt.Sprintf("user %s (machine %s/%s)", b.User, b.User, b.Machine)
		}
		return "user " + b.User
	case projections.EvUserRemoved:
		return "user " + b.User
	case projections.EvMachineAdded, projections.EvMachineRemoved:
		return b.User + "/" + b.Machine
	case projections.EvApproverAdded, projections.EvApproverRemoved:
		return "approver machine " + b.User + "/" + b.Machine
	case projections.EvChannelCreated:
		if b.Visibility != "" && b.Visibility != string(protocol.Public) {
			return fmt.Sprintf("channel %s (%s)", b.Channel, b.Visibility)
		}
		return "channel " + b.Channel
	case projections.EvChannelDeleted:
		return "channel " + b.Channel
	case projections.EvChannelRenamed:
		return fmt.Sprintf("channel %s → %s", b.Channel, b.NewName)
	case projections.EvVisibilityChanged:
		return fmt.Sprintf("channel %s → %s", b.Channel, b.Visibility)
	case projections.EvACLAdded, projections.EvACLRemoved, projections.EvBanned, projections.EvUnbanned:
		return fmt.Sprintf("%s on %s", b.User, b.Channel)
	case projections.EvInviteCreated, projections.EvInviteRevoked, projections.EvInviteExpired:
		return fmt.Sprintf("invite %s on %s", tok, b.Channel)
	case projections.EvInviteRedeemed:
		return fmt.Sprintf("invite %s on %s by %s", tok, b.Channel, b.User)
	case projections.EvKicked:
		return fmt.Sprintf("%s from %s", b.Target, b.Channel)
	}
	// A type this version does not know: name what the body names.
	var parts []string
	for _, p := range []struct{ k, v string }{{"user", b.User}, {"machine", b.Machine},
		{"channel", b.Channel}, {"target", b.Target}} {
		if p.v != "" {
			parts = append(parts, p.k+" "+p.v)
		}
	}
	return strings.Join(parts, ", ")
}

// eventData returns an event body for Event.Data: compact JSON, with a
// top-level "token" string redacted (projections.RedactData) unless
// showTokens.
func eventData(data []byte, showTokens bool) json.RawMessage {
	if !json.Valid(data) {
		b, _ := json.Marshal(string(data)) // invalid UTF-8 becomes U+FFFD
		return b
	}
	if !showTokens {
		data = projections.RedactData(data)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		b, _ := json.Marshal(string(data))
		return b
	}
	return buf.Bytes()
}

// FromWire builds the Event that `conclave audit --server` shows for an
// event the server sent in an audit_events frame, with the same target
// summary and token handling as a listing from a data dir.
func FromWire(seq uint64, tsMs int64, actor, typ string, data []byte, showTokens bool) Event {
	return Event{
		Seq:    seq,
		Time:   time.UnixMilli(tsMs).UTC(),
		Actor:  actor,
		Type:   typ,
		Target: target(typ, projections.DecodeFields(data), showTokens),
		Data:   eventData(data, showTokens),
	}
}

// ActorMatches reports whether an event's actor path matches an --actor
// filter (see Filter.Actor).
func ActorMatches(actor, want string) bool { return actorMatches(actor, want) }
