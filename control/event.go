package control

import (
	"time"

	"github.com/conclave/conclave/protocol"
)

// EventKind says what an [Event] carries.
type EventKind int

// Event kinds. A [Session] reports all but EventResumed; a [Subscription]
// reports EventMessage, EventGap, EventFrame, EventLost, EventResumed,
// EventRenamed and EventRewound.
const (
	// EventMessage: a channel message, Frame a channel_msg, delivered
	// live or (History) read from the history. A Subscription passes on
	// each message of its channel once, in seq order, across
	// reconnections.
	EventMessage EventKind = iota + 1
	// EventGap: the channel numbered Frame.Seq but the history does not
	// hold it (a post the server could not store, a damaged record).
	EventGap
	// EventFrame: any other unprompted frame (a whisper, a permission
	// frame, an error that announces a drop; for a Subscription also an
	// unsubscribed notice, and a rename of another channel).
	EventFrame
	// EventLost: the connection (Conn) ended after Uptime for a reason
	// worth retrying (Err); the next attempt is in RetryIn.
	EventLost
	// EventResumed: a new connection joined the Subscription's channel
	// again; catching up follows, as EventMessage with History set.
	EventResumed
	// EventRenamed: a channel was renamed (Frame, the renamed notice);
	// the session follows it.
	EventRenamed
	// EventRewound: the server's head is below the last message passed
	// on (it lost messages it had delivered, in a crash): numbering goes
	// on from Frame.Seq, the new head.
	EventRewound
	// EventUp: a new connection (Conn); its channels are being joined.
	EventUp
	// EventDialFailed: an attempt to connect failed (Err) for a reason
	// worth retrying; the next is in RetryIn.
	EventDialFailed
	// EventJoined: Channel was joined (again) on the new connection;
	// Frame is the joined reply, with the channel's head in Seq.
	EventJoined
	// EventJoinRefused: the server refused to join Channel (Err, a
	// [*protocol.Error]) on the new connection. Rejoin says it had been
	// joined before.
	EventJoinRefused
	// EventUnsubscribed: the server took a channel away (Frame, the
	// unsubscribed notice); the session no longer joins it.
	EventUnsubscribed
)

// Event is one thing a [Session] or a [Subscription] reports.
type Event struct {
	Kind    EventKind
	Frame   *protocol.Frame // EventMessage, EventGap, EventFrame, EventRenamed, EventRewound, EventJoined, EventUnsubscribed
	History bool            // EventMessage: read from the history
	Err     error           // EventLost, EventDialFailed, EventJoinRefused: why
	Conn    *Conn           // EventUp: the new connection; EventLost: the one that ended
	Channel string          // EventJoined, EventJoinRefused
	Rejoin  bool            // EventJoinRefused: the channel had been joined before
	RetryIn time.Duration   // EventLost, EventDialFailed: the wait before the next attempt
	Uptime  time.Duration   // EventLost: how long the connection was up

	counted bool // a frame from the connection, counted in Session.frames
}
