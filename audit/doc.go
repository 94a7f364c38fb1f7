// Package audit reads a conclave data dir read-only and replays its event
// log: the event listing of `conclave audit`, the state at a point in time
// (`conclave audit --at`) and the integrity check of `conclave audit verify`.
//
// # Read-only
//
// [Open] checks that a directory is a data dir (it holds server-id and
// events/) and nothing more. Every method reads the event log through
// [eventlog.Reader]: it parses the segment files itself, never opens the
// log as a writer, never repairs, takes no lock and writes nothing under
// the data dir, so it is safe next to a running server. A record still
// being written at the very end of the log (an incomplete last frame) is
// the end of the log, not an error.
//
// The log is the truth: [DataDir.StateAt] replays from seq 1 into a fresh
// [projections.State] and never trusts a snapshot; [DataDir.Verify] checks
// the snapshots against that replay.
//
// # Secrets
//
// Invite tokens are shown redacted by projections.RedactToken (the same
// rule the server applies to audit_events), their first six characters
// and "…", unless the caller asks for them (Filter.ShowTokens, the showTokens
// argument of StateAt): in event targets, in event data and in state
// dumps. Public keys are not secrets and are passed through.
//
// # Concurrency
//
// A [DataDir] holds no open files and may be used from several goroutines
// at once, except [DataDir.SetProgress], which must be called before use.
package audit
