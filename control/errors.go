package control

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Their text is shown to users as it is, so it carries no
// package prefix.
var (
	// ErrClosed is returned by Request on a Conn that was closed, and is
	// what Err reports after Close.
	ErrClosed = errors.New("connection closed")

	// ErrNoResponse means the connection ended while a request waited for
	// its reply. The error wrapping it also wraps the reason, [Conn.Err].
	ErrNoResponse = errors.New("connection closed before a response arrived")
)

// TimeoutError reports a wait that ran out of time: connecting and the
// handshake, a request's reply, or a keepalive pong. It matches
// context.DeadlineExceeded with errors.Is.
type TimeoutError struct {
	After time.Duration // how long was waited
	Op    string        // what was waited for, e.g. "connecting to ws://h:4390"
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("timed out after %s %s", e.After, e.Op)
}

// Timeout reports true, as net.Error's Timeout does.
func (e *TimeoutError) Timeout() bool { return true }

// Unwrap returns context.DeadlineExceeded.
func (e *TimeoutError) Unwrap() error { return context.DeadlineExceeded }
