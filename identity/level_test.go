package identity

import (
	"strings"
	"testing"
)

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in   string
		want Level
		ok   bool
	}{
		{"mute", Mute, true},
		{"notify", Notify, true},
		{"converse", Converse, true},
		{"act", Act, true},
		{"Act", Act, true},
		{"", 0, false},
		{"loud", 0, false},
		{" act", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseLevel(tc.in)
			if tc.ok {
				if err != nil || got != tc.want {
					t.Errorf("got (%v, %v), want %v", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("got %v, want an error", got)
			}
			for _, s := range []string{`"` + tc.in + `"`, "mute, notify, converse, act"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestLevelOrderAndText(t *testing.T) {
	levels := Levels()
	want := []string{"mute", "notify", "converse", "act"}
	if len(levels) != len(want) {
		t.Fatalf("Levels() = %v", levels)
	}
	for i, l := range levels {
		if i > 0 && !(levels[i-1] < l) {
			t.Errorf("%v is not below %v", levels[i-1], l)
		}
		if l.String() != want[i] {
			t.Errorf("String() = %q, want %q", l.String(), want[i])
		}
		text, err := l.MarshalText()
		if err != nil || string(text) != want[i] {
			t.Errorf("MarshalText() = (%q, %v), want %q", text, err, want[i])
		}
		var back Level
		if err := back.UnmarshalText(text); err != nil || back != l {
			t.Errorf("UnmarshalText(%q) = (%v, %v), want %v", text, back, err, l)
		}
		if got, want := l.CanEmit(), l >= Converse; got != want {
			t.Errorf("%v.CanEmit() = %v, want %v", l, got, want)
		}
	}
	if DefaultLevel != Notify {
		t.Errorf("DefaultLevel = %v, want notify", DefaultLevel)
	}
	bad := Level(9)
	if bad.Valid() || bad.CanEmit() || bad.String() != "Level(9)" {
		t.Errorf("Level(9): Valid=%v CanEmit=%v String=%q", bad.Valid(), bad.CanEmit(), bad.String())
	}
	if _, err := bad.MarshalText(); err == nil {
		t.Error("MarshalText of an invalid level succeeded")
	}
}
