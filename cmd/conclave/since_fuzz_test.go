package main

import (
	"testing"
	"time"
)

// FuzzParseSince: the times --since, --until and --at take never panic, a
// time is never in the future, and a duration never reaches further back
// than maxAgo.
func FuzzParseSince(f *testing.F) {
	for _, s := range []string{"2026-11-24T09:00:00Z", "2026-11-24", "2030-01-01", "36h", "7d", "1h30m", "90", " 10m ",
		"", "yesterday", "-5m", "7x", "99999999999d", "1e9", "d", "2026-13-01", "9223372036854775807", "2562047h",
		"0001-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00", "1.5h", "0d", "+7d", "7 d"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseSince(s, now)
		if err != nil {
			return
		}
		if got.After(now) {
			t.Fatalf("parseSince(%q) = %v, after now", s, got)
		}
		if d, ok := parseAgo(s); ok {
			if d < 0 || d > maxAgo {
				t.Fatalf("parseAgo(%q) = %v, outside [0, %v]", s, d, maxAgo)
			}
		}
	})
}

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
