package audit

import (
	"strings"
	"testing"
	"time"
)

var parseNow = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

var parseTimeTests = []struct {
	name, in string
	want     time.Time // zero: an error
}{
	{"rfc3339", "2026-11-24T09:00:00Z", time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)},
	{"rfc3339 offset", "2026-11-24T10:00:00+01:00", time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)},
	{"rfc3339 fraction", "2026-11-24T09:00:00.250Z", time.Date(2026, 11, 24, 9, 0, 0, 250e6, time.UTC)},
	{"date", "2026-11-20", time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)},
	{"today", "2026-11-24", time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)},
	{"spaces", "  2026-11-20 ", time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)},
	{"future time", "2027-01-01T00:00:00Z", parseNow},
	{"future date", "2030-01-01", parseNow},
	{"seconds", "30s", parseNow.Add(-30 * time.Second)},
	{"minutes", "90m", parseNow.Add(-90 * time.Minute)},
	{"hours", "36h", parseNow.Add(-36 * time.Hour)},
	{"days", "7d", parseNow.Add(-7 * 24 * time.Hour)},
	{"days and hours", "1d12h", parseNow.Add(-36 * time.Hour)},
	{"go duration", "1h30m", parseNow.Add(-90 * time.Minute)},
	{"zero", "0s", parseNow},
	{"empty", "", time.Time{}},
	{"word", "yesterday", time.Time{}},
	{"bare number", "90", time.Time{}},
	{"negative", "-5m", time.Time{}},
	{"plus", "+5m", time.Time{}},
	{"bare unit", "h", time.Time{}},
	{"bare d", "d", time.Time{}},
	{"days after hours", "1h2d", time.Time{}},
	{"fractional days", "1.5d", time.Time{}},
	{"too far back", "100000d", time.Time{}},
	{"overflow", "9999999999h", time.Time{}},
	{"bad date", "2026-13-01", time.Time{}},
	{"no zone", "2026-11-24T09:00:00", time.Time{}},
}

func TestParseTime(t *testing.T) {
	for _, tt := range parseTimeTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTime(tt.in, parseNow)
			if tt.want.IsZero() {
				if err == nil {
					t.Fatalf("ParseTime(%q) = %v, want an error", tt.in, got)
				}
				if !strings.Contains(err.Error(), "RFC 3339") {
					t.Errorf("error %q does not name the forms accepted", err)
				}
				return
			}
			if err != nil || !got.Equal(tt.want) {
				t.Errorf("ParseTime(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func FuzzParseTime(f *testing.F) {
	for _, tt := range parseTimeTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTime(s, parseNow)
		if err != nil {
			if !got.IsZero() {
				t.Errorf("ParseTime(%q) returned %v with error %v", s, got, err)
			}
			return
		}
		if got.After(parseNow) {
			t.Errorf("ParseTime(%q) = %v, after now %v", s, got, parseNow)
		}
		if again, err := ParseTime(s, parseNow); err != nil || !again.Equal(got) {
			t.Errorf("ParseTime(%q) is not deterministic: %v then %v, %v", s, got, again, err)
		}
	})
}
