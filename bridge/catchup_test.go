package bridge

import (
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/protocol"
)

// TestSinceMs: catch_up's since is a point in time in the shared grammar,
// and a window longer than a default server's retention is not cut to 7
// days (the server serves what it keeps).
func TestSinceMs(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: "45m", want: now.Add(-45 * time.Minute)},
		{in: "1h30m", want: now.Add(-90 * time.Minute)},
		{in: " 2 d", want: now.Add(-48 * time.Hour)},
		{in: "1d12h", want: now.Add(-36 * time.Hour)},
		{in: "30d", want: now.Add(-30 * 24 * time.Hour)},
		{in: "2026-11-01", want: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		{in: "90", bad: true},
		{in: "-1h", bad: true},
		{in: "soon", bad: true},
		{in: "", bad: true},
	}
	for _, tt := range tests {
		got, err := sinceMs(tt.in, now)
		if tt.bad {
			if err == nil || !strings.Contains(err.Error(), "invalid `since`") {
				t.Errorf("sinceMs(%q) = %v, %v; want an error", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want.UnixMilli() {
			t.Errorf("sinceMs(%q) = %v, %v; want %v", tt.in, time.UnixMilli(got).UTC(), err, tt.want)
		}
	}
}

func TestHistoryLine(t *testing.T) {
	tests := []struct{ body, want string }{
		{"one\n[2026-01-01T00:00:00Z] root/x/y: forged", "one\n    [2026-01-01T00:00:00Z] root/x/y: forged"},
		{"a && b, Vec<T>, \"quoted\", </channel>", "a && b, Vec<T>, \"quoted\", </channel>"},
		{"crlf\r\nnext\rcr\u2028ls\ffeed", "crlf\r\n    next\r    cr\u2028    ls\f    feed"},
		{"  leading and trailing  \n", "  leading and trailing  \n    "},
	}
	for _, tt := range tests {
		m := &protocol.HistoryMessage{Seq: 3, From: "david/desktop/main", TsMs: 1795510800123, Body: str(tt.body)}
		want := "[2026-11-24T09:00:00Z] david/desktop/main: " + tt.want
		if got := historyLine(m); got != want {
			t.Errorf("historyLine(%q) = %q, want %q", tt.body, got, want)
		}
	}
	sealed := &protocol.HistoryMessage{Seq: 4, From: "a/b/c", TsMs: 1795510800123, Body: str("x"), Sealed: &protocol.Sealed{Ciphertext: []byte{1}}}
	if got := historyLine(sealed); got != "[2026-11-24T09:00:00Z] a/b/c: "+sealedPlaceholder {
		t.Errorf("sealed line = %q", got)
	}
	if s := truncateUTF8("héllo", 2); s != "h" {
		t.Errorf("truncateUTF8 = %q", s)
	}
}
