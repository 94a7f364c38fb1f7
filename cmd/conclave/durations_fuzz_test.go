package main

import (
	"testing"
	"time"
)

// FuzzParseDurations: --history-retention and invite --expires-in never
// panic or overflow and stay within their documented bounds.
func FuzzParseDurations(f *testing.F) {
	for _, s := range []string{"7d", "36h", "90m", "30s", "1h30m", "90", "0", "0d", "3650d", "3651d", "59s", "1m",
		"18446744073709551615s", "9223372036854775807d", "1h 30m", "1 h", "d", "h1", "-1h", "1.5h", "315360000", "315360001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := parseRetention(s); err == nil && (d < time.Minute || d <= 0) {
			t.Fatalf("parseRetention(%q) = %v, below a minute", s, d)
		}
		if secs, err := parseLifetime(s); err == nil && (secs < 1 || secs > maxInviteLifetime) {
			t.Fatalf("parseLifetime(%q) = %d s, outside [1, %d]", s, secs, maxInviteLifetime)
		}
	})
}
