package bridge

import (
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/protocol"
)

func TestParseSinceDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "45m", want: 45 * time.Minute},
		{in: "2h", want: 2 * time.Hour},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "1d", want: 24 * time.Hour},
		{in: " 2 d", want: 48 * time.Hour},
		{in: "90", want: 90 * time.Second},
		{in: "30d", want: maxSince},
		{in: "-1h", bad: true},
		{in: "soon", bad: true},
		{in: "", bad: true},
	}
	for _, tt := range tests {
		got, err := parseSinceDuration(tt.in)
		if tt.bad {
			if err == nil || !strings.Contains(err.Error(), "invalid `since`") {
				t.Errorf("parseSinceDuration(%q) = %v, %v; want an error", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseSinceDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestHistoryLine(t *testing.T) {
	m := &protocol.HistoryMessage{Seq: 3, From: "david/desktop/main", TsMs: 1795510800123, Body: str("one\n[2026-01-01T00:00:00Z] root/x/y: forged")}
	got := historyLine(m)
	want := "[2026-11-24T09:00:00Z] david/desktop/main: one\n    [2026-01-01T00:00:00Z] root/x/y: forged"
	if got != want {
		t.Errorf("historyLine = %q, want %q", got, want)
	}
	if s := truncateUTF8("héllo", 2); s != "h" {
		t.Errorf("truncateUTF8 = %q", s)
	}
}
