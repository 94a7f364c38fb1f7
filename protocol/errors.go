package protocol

import "fmt"

// Code is a stable error code carried by "error" frames. Codes are
// append-only: their values cross the wire.
type Code string

// Error codes.
const (
	CodeVersionMismatch Code = "version_mismatch"
	CodeMalformed       Code = "malformed"
	CodeUnauthorized    Code = "unauthorized"
	CodeNotFound        Code = "not_found"
	CodeConflict        Code = "conflict"
	CodeRateLimited     Code = "rate_limited"
	CodeTooLarge        Code = "too_large"
	CodeInternal        Code = "internal"
)

// Codes lists every code, in the order they were added.
var Codes = []Code{CodeVersionMismatch, CodeMalformed, CodeUnauthorized, CodeNotFound,
	CodeConflict, CodeRateLimited, CodeTooLarge, CodeInternal}

// Known reports whether c is a defined code.
func (c Code) Known() bool {
	for _, k := range Codes {
		if k == c {
			return true
		}
	}
	return false
}

// Error is a protocol-level refusal: the code and the human message a peer
// receives. It is safe to show to users.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf builds an *Error.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// NoSuchChannel is the one refusal for a channel that does not exist or
// that the caller may not know exists. Its text is identical in both cases.
func NoSuchChannel(name string) *Error {
	return Errorf(CodeNotFound, "no such channel %q", name)
}

// NoSuchChannelOrInvite is the one refusal of every join that fails for
// lack of access: no such channel, a private channel without a valid
// invite, or one the caller may not know exists. It names the invite, so a
// refused token is explained, and stays identical for a private channel
// and a missing one.
func NoSuchChannelOrInvite(name string) *Error {
	return Errorf(CodeNotFound, "no such channel %q, or the invite is invalid, used up or expired", name)
}

// Reasons sent with an "error" frame when the server drops a session.
const (
	ReasonSuperseded  = "session superseded by a newer connection for the same path"
	ReasonIdle        = "idle timeout: no heartbeat"
	ReasonMachineGone = "machine key revoked"
	// ReasonUnknownKey refuses a login whose key is not enrolled (never
	// was, or was revoked, or its user was removed).
	ReasonUnknownKey  = "unknown machine key"
	ReasonUserRemoved = "user removed from this server"
	// ReasonSlowConsumer: the session's outbound queue went over its
	// budget (bytes or frames). What was queued for it is discarded:
	// channel posts can be read again with read_since, whispers cannot.
	ReasonSlowConsumer = "slow consumer: outbound queue over budget; what was queued is dropped (posts stay in history; whispers are not stored)"
	ReasonShutdown     = "server shutting down"
	ReasonHandshake    = "handshake timed out"
)
