package timespec

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	day := 24 * time.Hour
	good := []struct {
		in   string
		want time.Duration
	}{
		{"90s", 90 * time.Second},
		{"10m", 10 * time.Minute},
		{"36h", 36 * time.Hour},
		{"1h30m", 90 * time.Minute},
		{"1.5h", 90 * time.Minute},
		{"7d", 7 * day},
		{"1d12h", 36 * time.Hour},
		{"1d 12h", 36 * time.Hour},
		{" 2 d", 2 * day},
		{"2w", 14 * day},
		{"1w2d3h", 9*day + 3*time.Hour},
		{"500ms", 500 * time.Millisecond},
		{"0s", 0},
		{"73000d", 73000 * day},
	}
	for _, tt := range good {
		if got, err := ParseDuration(tt.in); err != nil || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	bad := []struct{ in, want string }{
		{"", "empty duration"},
		{"90", "90 what? write 90s or 90m"},
		{" 1.5 ", "1.5 what?"},
		{"-5m", "invalid duration"},
		{"+5m", "invalid duration"},
		{"1h30", "invalid duration"},
		{"7x", "invalid duration"},
		{"d", "invalid duration"},
		{"soon", "invalid duration"},
		{"1e9s", "invalid duration"},
		{"1..2h", "invalid duration"},
		{"73001d", "too long"},
		{"99999999999999999999999d", "too long"},
		{"9999999999999h", "too long"},
		{"73000d1h", "too long"},
	}
	for _, tt := range bad {
		if got, err := ParseDuration(tt.in); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseDuration(%q) = %v, %v; want an error saying %q", tt.in, got, err, tt.want)
		}
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
	}{
		{"2026-11-24T09:00:00Z", time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)},
		{"2026-11-24T10:00:00.5+01:00", time.Date(2026, 11, 24, 9, 0, 0, 5e8, time.UTC)},
		{"2026-11-24", time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)},
		{"2030-01-01", now}, // the future means now
		{"36h", now.Add(-36 * time.Hour)},
		{"7d", now.Add(-7 * 24 * time.Hour)},
		{"1d12h", now.Add(-36 * time.Hour)},
		{"2w", now.Add(-14 * 24 * time.Hour)},
		{" 10m ", now.Add(-10 * time.Minute)},
	}
	for _, tt := range tests {
		got, err := ParseTime(tt.in, now)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	bad := []struct{ in, want string }{
		{"90", "90 what? write 90s or 90m"},
		{"", "invalid time"},
		{"yesterday", "invalid time"},
		{"-5m", "invalid time"},
		{"2026-13-01", "invalid time"},
		{"99999999999d", "invalid time"},
	}
	for _, tt := range bad {
		if got, err := ParseTime(tt.in, now); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want an error saying %q", tt.in, got, err, tt.want)
		}
	}
}

// FuzzParse: neither parser panics, a duration is within [0, Max] and a
// point in time is never after now.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"90s", "1d12h", "2w", "90", "2026-11-24", "2026-11-24T09:00:00Z", "-5m", "1.5h", "73000d"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := ParseDuration(s); err == nil && (d < 0 || d > Max) {
			t.Fatalf("ParseDuration(%q) = %v, outside [0, %v]", s, d, Max)
		}
		if p, err := ParseTime(s, now); err == nil && p.After(now) {
			t.Fatalf("ParseTime(%q) = %v, after now", s, p)
		}
	})
}
