package identity

import (
	"reflect"
	"testing"
)

func TestResolve(t *testing.T) {
	c := NewConfig()
	c.SetOverride("ws://s1", "ops", false, Act)
	c.SetOverride("ws://s1", "", true, Converse)
	c.SetOverride("ws://s2", "ops", false, Mute)

	tests := []struct {
		name    string
		server  string
		channel string
		whisper bool
		want    Level
	}{
		{"channel override", "ws://s1", "ops", false, Act},
		{"whisper override", "ws://s1", "", true, Converse},
		{"whisper ignores channel", "ws://s1", "ops", true, Converse},
		{"other channel falls back", "ws://s1", "dev", false, Notify},
		{"same channel on another server", "ws://s2", "ops", false, Mute},
		{"whisper on another server falls back", "ws://s2", "", true, Notify},
		{"unknown server falls back", "ws://s3", "ops", false, Notify},
		{"URL compared verbatim", "ws://s1/", "ops", false, Notify},
		{"channel compared verbatim", "ws://s1", "Ops", false, Notify},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := c.Resolve(tc.server, tc.channel, tc.whisper); got != tc.want {
				t.Errorf("Resolve(%q, %q, %v) = %v, want %v", tc.server, tc.channel, tc.whisper, got, tc.want)
			}
		})
	}

	c.DefaultPermission = Mute
	if got := c.Resolve("ws://s3", "ops", false); got != Mute {
		t.Errorf("after changing the default: got %v, want mute", got)
	}
}

func TestSetOverrideReplacesSameScope(t *testing.T) {
	c := NewConfig()
	c.SetOverride("ws://s1", "ops", false, Act)
	c.SetOverride("ws://s1", "", true, Converse)
	c.SetOverride("ws://s1", "ops", false, Mute)
	c.SetOverride("ws://s1", "ignored", true, Notify)
	c.SetOverride("ws://s1", "dev", false, Act)
	want := []Override{
		{Server: "ws://s1", Channel: "ops", Level: Mute},
		{Server: "ws://s1", Whisper: true, Level: Notify},
		{Server: "ws://s1", Channel: "dev", Level: Act},
	}
	if !reflect.DeepEqual(c.Overrides, want) {
		t.Errorf("got %+v, want %+v", c.Overrides, want)
	}
}
