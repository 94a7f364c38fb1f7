package timespec

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Max is the longest duration the grammar accepts (200 years), so that a
// point that long ago, and every sum on the way, stays representable.
const Max = 200 * 365 * 24 * time.Hour

const examples = "90s, 10m, 36h, 1d12h or 2w"

// units are the units beyond Go's.
var units = map[string]time.Duration{
	"d": 24 * time.Hour,
	"w": 7 * 24 * time.Hour,
}

// goUnits are the units time.ParseDuration knows.
var goUnits = map[string]bool{"ns": true, "us": true, "µs": true, "μs": true, "ms": true, "s": true, "m": true, "h": true}

// ParseDuration parses a duration (see the package documentation). It
// refuses an empty string, a bare number (with a hint naming the units),
// a sign, an unknown unit and anything longer than [Max].
func ParseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty duration: write e.g. %s", examples)
	}
	if isNumber(t) {
		return 0, fmt.Errorf("%s what? write %ss or %sm", t, t, t)
	}
	bad := fmt.Errorf("invalid duration %q: write e.g. %s", t, examples)
	var total time.Duration
	for rest := t; rest != ""; {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		num := rest[:i]
		rest = strings.TrimLeft(rest[i:], " ")
		j := 0
		for j < len(rest) && !(rest[j] >= '0' && rest[j] <= '9' || rest[j] == '.' || rest[j] == ' ') {
			j++
		}
		unit := rest[:j]
		rest = strings.TrimLeft(rest[j:], " ")
		if !isNumber(num) || unit == "" {
			return 0, bad
		}
		var part time.Duration
		if mult, ok := units[unit]; ok {
			f, err := strconv.ParseFloat(num, 64)
			if err != nil || f*float64(mult) > float64(Max) {
				return 0, tooLong(t)
			}
			part = time.Duration(f * float64(mult))
		} else if goUnits[unit] {
			var err error
			if part, err = time.ParseDuration(num + unit); err != nil {
				return 0, tooLong(t) // a number and a unit: only overflow fails
			}
		} else {
			return 0, bad
		}
		if part > Max-total {
			return 0, tooLong(t)
		}
		total += part
	}
	return total, nil
}

func tooLong(s string) error {
	return fmt.Errorf("duration %q is too long: at most 200 years", s)
}

// isNumber reports whether s is digits with at most one '.', and at least
// one digit.
func isNumber(s string) bool {
	digits, dots := 0, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] >= '0' && s[i] <= '9':
			digits++
		case s[i] == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}

// ParseTime parses a point in time (see the package documentation)
// relative to now. A time after now means now.
func ParseTime(s string, now time.Time) (time.Time, error) {
	t := strings.TrimSpace(s)
	if p, err := time.Parse(time.RFC3339, t); err == nil {
		return notAfter(p, now), nil
	}
	if p, err := time.Parse(time.DateOnly, t); err == nil {
		return notAfter(p, now), nil
	}
	d, err := ParseDuration(t)
	if err == nil {
		return now.Add(-d), nil
	}
	if isNumber(t) {
		return time.Time{}, err // the hint says it best
	}
	return time.Time{}, fmt.Errorf("invalid time %q: want RFC 3339 (2026-11-24T09:00:00Z), a date (2026-11-24) or a duration before now (%s)", t, examples)
}

func notAfter(t, now time.Time) time.Time {
	if t.After(now) {
		return now
	}
	return t
}
