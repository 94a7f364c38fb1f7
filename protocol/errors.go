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
	// Reason is set on the refusal that ends a session (the id-less
	// error frame a dropped session gets last, or a refused handshake).
	Reason Reason
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

// Reason is why the server drops a session: a stable code carried in the
// "reason" field of the id-less error frame that ends it, beside the
// human message ([Reason.Text]). Clients branch on the code, never on the
// text. Reasons are append-only: their values cross the wire.
type Reason string

// Drop reasons.
const (
	ReasonSuperseded  Reason = "superseded"      // a newer connection for the same path
	ReasonIdle        Reason = "idle"            // no heartbeat
	ReasonMachineGone Reason = "machine_revoked" // the session's machine key was revoked
	// ReasonUnknownKey refuses a login whose key is not enrolled (never
	// was, or was revoked, or its user was removed).
	ReasonUnknownKey  Reason = "unknown_key"
	ReasonUserRemoved Reason = "user_removed" // the session's user was removed
	// ReasonSlowConsumer: the session's outbound queue went over its
	// budget (bytes or frames). What was queued for it is discarded:
	// channel posts can be read again with read_since, whispers cannot.
	ReasonSlowConsumer Reason = "slow_consumer"
	ReasonShutdown     Reason = "shutdown"          // the server is stopping or restarting
	ReasonHandshake    Reason = "handshake_timeout" // the handshake took too long
	ReasonTooLarge     Reason = "too_large"         // the client sent a message over MaxFramePostAuth
)

// reasons holds each reason's message and whether it is temporary.
var reasons = map[Reason]struct {
	text      string
	temporary bool
}{
	ReasonSuperseded:   {"session superseded by a newer connection for the same path", false},
	ReasonIdle:         {"idle timeout: no heartbeat", true},
	ReasonMachineGone:  {"machine key revoked", false},
	ReasonUnknownKey:   {"unknown machine key", false},
	ReasonUserRemoved:  {"user removed from this server", false},
	ReasonSlowConsumer: {"slow consumer: outbound queue over budget; what was queued is dropped (posts stay in history; whispers are not stored)", true},
	ReasonShutdown:     {"server shutting down", true},
	ReasonHandshake:    {"handshake timed out", true},
	ReasonTooLarge:     {fmt.Sprintf("frame larger than %d bytes", MaxFramePostAuth), false},
}

// Text returns the reason's message, the one sent beside it.
func (r Reason) Text() string {
	if d, ok := reasons[r]; ok {
		return d.text
	}
	return string(r)
}

// Temporary reports whether a client dropped for r should reconnect
// later: the server is restarting, the session idled or fell behind, the
// handshake was slow. The other reasons will not go away by retrying.
func (r Reason) Temporary() bool { return reasons[r].temporary }

// Err returns the unauthorized refusal that carries r.
func (r Reason) Err() *Error {
	return &Error{Code: CodeUnauthorized, Message: r.Text(), Reason: r}
}

// reasonOfText recognises the message of a server that sent no reason
// code (before reasons had codes), so that new clients still tell a
// restarting server from a refusal.
func reasonOfText(code Code, msg string) Reason {
	if code != CodeUnauthorized {
		return ""
	}
	for r, d := range reasons {
		if d.text == msg {
			return r
		}
	}
	return ""
}
