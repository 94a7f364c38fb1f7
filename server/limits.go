package server

import (
	"time"

	"golang.org/x/time/rate"
)

// bucket is a token bucket, rate tokens per second up to burst:
// golang.org/x/time/rate's Limiter, with the two questions the server asks
// of it.
type bucket struct {
	lim *rate.Limiter
}

func newBucket(r float64, burst int) *bucket {
	return &bucket{lim: rate.NewLimiter(rate.Limit(r), max(burst, 1))}
}

// take spends one token, or returns how long until one is available.
func (b *bucket) take(now time.Time) time.Duration {
	if b.lim.AllowN(now, 1) {
		return 0
	}
	r := b.lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return max(wait, time.Nanosecond)
}

// full reports whether the bucket has refilled completely (it can be
// forgotten without changing behaviour).
func (b *bucket) full(now time.Time) bool {
	return b.lim.TokensAt(now) >= float64(b.lim.Burst())
}
