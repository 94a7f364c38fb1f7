package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// parseSince parses the times --since takes: RFC 3339
// (2026-11-24T09:00:00Z), a date (2026-11-24, midnight UTC), or a duration
// before now (90s, 10m, 36h, 7d, 1h30m, or bare seconds). A time in the
// future means now.
func parseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return notAfter(t, now), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return notAfter(t, now), nil
	}
	if d, ok := parseAgo(s); ok {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("invalid time %q: want RFC 3339 (2026-11-24T09:00:00Z), a date (2026-11-24) or a duration before now (36h, 7d)", s)
}

func notAfter(t, now time.Time) time.Time {
	if t.After(now) {
		return now
	}
	return t
}

// maxAgo bounds durations so that now minus one stays representable.
const maxAgo = 100 * 365 * 24 * time.Hour

// parseAgo parses a non-negative duration: Go's syntax, a number of days
// ("7d"), or bare seconds ("90").
func parseAgo(s string) (time.Duration, bool) {
	var d time.Duration
	switch {
	case s == "":
		return 0, false
	case strings.HasSuffix(s, "d"):
		n, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(s, "d")), 10, 32)
		if err != nil || n > uint64(maxAgo/(24*time.Hour)) {
			return 0, false
		}
		d = time.Duration(n) * 24 * time.Hour
	default:
		if n, err := strconv.ParseUint(s, 10, 64); err == nil {
			if n > uint64(maxAgo/time.Second) {
				return 0, false
			}
			return time.Duration(n) * time.Second, true
		}
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, false
		}
	}
	if d < 0 || d > maxAgo {
		return 0, false
	}
	return d, true
}
