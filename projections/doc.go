// Package projections folds the server's event log into in-memory read
// models (users, machines, channels, ACLs, invites, bans) and validates
// commands against them.
//
// # Decide and Apply
//
// The server's single writer handles a command in two steps.
// [State.Decide] checks the command for an [Actor] against the current
// state and returns the events it becomes, or a [protocol.Error] that is
// safe to show the user. It never modifies the state. The writer then
// appends the events to the log and calls [State.Apply] for each of them,
// in order, before it decides the next command, so every decision sees the
// effect of every earlier command, including those whose batch is not yet
// fsynced. On startup the same Apply replays the log (after loading a
// snapshot with [UnmarshalSnapshot], if any). An event that does not apply
// (unknown type, bad JSON, or contradicting the state) is refused with an
// error wrapping [ErrInvalidEvent], and replay stops there.
//
// Refusals that could reveal a private channel to a non-member are
// identical in code and text to [protocol.NoSuchChannel]; see
// [State.Visible].
//
// # Determinism
//
// Apply uses no clock and no randomness: times come from [Event.TimeMs]
// and invite tokens from the command. Replaying the same events therefore
// gives the same state, and [State.MarshalSnapshot] encodes it as the same
// bytes (JSON with every list sorted). Queries return copies sorted by
// name.
//
// # Concurrency
//
// A [State] is not safe for concurrent use. The server guards it with a
// sync.RWMutex: queries and Decide under the read lock, Apply under the
// write lock.
package projections
