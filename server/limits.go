package server

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
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

// fingerprint renders a key as ssh-keygen -l does: SHA256:<base64, no padding>.
func fingerprint(pub ed25519.PublicKey) string {
	// The SSH wire form of an ed25519 key: string "ssh-ed25519", string key.
	blob := make([]byte, 0, 51)
	blob = appendSSHString(blob, []byte("ssh-ed25519"))
	blob = appendSSHString(blob, pub)
	sum := sha256.Sum256(blob)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

func appendSSHString(b, s []byte) []byte {
	n := len(s)
	b = append(b, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	return append(b, s...)
}
