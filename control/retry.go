package control

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

// Reconnect delays of [Backoff]'s zero value.
const (
	DefaultBackoffMin = time.Second
	DefaultBackoffMax = 30 * time.Second
)

// Reconnectable reports whether a connection that ended with err (what
// [Conn.Err] returns), or a [Dial] that failed with err, is worth trying
// again later.
//
// Worth retrying: a lost or refused transport, a timeout, an HTTP answer
// other than the upgrade (a server still starting answers 503), and the
// server's own temporary reasons ([protocol.Reason.Temporary]: shutting
// down or restarting, an idle timeout, a slow-consumer drop, a handshake
// timeout), and `internal` and `rate_limited` refusals.
//
// Not worth retrying: any other refusal or drop by the server (a session
// superseded by a newer one, a revoked machine key, a removed user, a
// refused signature or key), a server that presents another id than the
// pinned one, a Conn closed by this side ([ErrClosed]) and a cancelled
// context.
func Reconnectable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, ErrClosed) || errors.Is(err, identity.ErrServerIDMismatch) {
		return false
	}
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe.Code == protocol.CodeInternal || pe.Code == protocol.CodeRateLimited || pe.Reason.Temporary()
	}
	return true
}

// Backoff yields the delays between reconnection attempts: Min (default
// 1 s) at first, then twice the previous delay, at most Max (default
// 30 s), each stretched by a random part of up to a quarter, so that the
// clients a restarting server dropped all at once do not come back in
// lockstep. Its zero value is ready to use; it is not safe for concurrent
// use.
type Backoff struct {
	Min, Max time.Duration
	next     time.Duration
}

// Next returns the delay before the next attempt: the base delay d of the
// sequence plus a random jitter in [0, d/4).
func (b *Backoff) Next() time.Duration {
	d := b.base()
	return d + rand.N(d/4+1)
}

// base returns the next delay of the sequence, without jitter.
func (b *Backoff) base() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = DefaultBackoffMin
	}
	if hi < lo {
		hi = max(DefaultBackoffMax, lo)
	}
	if b.next < lo {
		b.next = lo
	}
	d := b.next
	b.next = min(2*b.next, hi)
	return d
}

// Reset starts the sequence again at Min, after a successful connection.
func (b *Backoff) Reset() { b.next = 0 }

// Wait waits the next delay, or less if ctx ends first; it reports
// whether ctx is still alive.
func (b *Backoff) Wait(ctx context.Context) bool { return sleepCtx(ctx, b.Next()) }

// sleepCtx waits d, or less if ctx ends first; it reports whether ctx is
// still alive.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
