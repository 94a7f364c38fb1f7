package audit

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// maxAgo bounds how far back a duration may reach, so that every result
// and every multiplication stays representable.
const maxAgo = 200 * 365 * 24 * time.Hour

// ParseTime parses the times that --since, --until and --at take
// (SPEC.md §5):
//
//   - RFC 3339: 2026-11-24T09:00:00Z, 2026-11-24T10:00:00.5+01:00;
//   - a date: 2026-11-24, midnight UTC;
//   - a duration before now: 30s, 90m, 36h, 7d, 1d12h, 1h30m (Go's
//     duration syntax, plus a leading number of days).
//
// A time after now means now. Anything else is an error naming the forms
// accepted.
func ParseTime(s string, now time.Time) (time.Time, error) {
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
	return time.Time{}, fmt.Errorf("invalid time %q: want RFC 3339 (2026-11-24T09:00:00Z), a date (2026-11-24) or a duration before now (30s, 90m, 36h, 7d)", s)
}

func notAfter(t, now time.Time) time.Time {
	if t.After(now) {
		return now
	}
	return t
}

// parseAgo parses a non-negative duration: an optional number of days
// ("7d") followed by an optional Go duration ("12h", "1h30m").
func parseAgo(s string) (time.Duration, bool) {
	var d time.Duration
	if days, rest, ok := strings.Cut(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 32)
		if err != nil || n > uint64(maxAgo/(24*time.Hour)) {
			return 0, false
		}
		d, s = time.Duration(n)*24*time.Hour, rest
		if s == "" {
			return d, true
		}
	}
	if s == "" || s[0] < '0' || s[0] > '9' { // no sign, no bare unit
		return 0, false
	}
	rest, err := time.ParseDuration(s)
	if err != nil || rest > maxAgo {
		return 0, false
	}
	if d += rest; d > maxAgo {
		return 0, false
	}
	return d, true
}
