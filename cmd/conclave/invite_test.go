package main

import (
	"strings"
	"testing"
)

func TestParseLifetime(t *testing.T) {
	good := map[string]int64{
		"30s": 30, "10m": 600, "24h": 86400, "7d": 604800, " 1h30m ": 5400, "1d 12h": 129600, "1d12h": 129600,
		"2w": 1209600, "1.5h": 5400, "3650d": maxInviteLifetime, "1s": 1,
	}
	for in, want := range good {
		if got, err := parseLifetime(in); err != nil || got != want {
			t.Errorf("parseLifetime(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	bad := map[string]string{
		"": "empty duration", "soon": "invalid duration", "1h30": "invalid duration", "-5s": "invalid duration",
		"10y": "invalid duration", "h": "invalid duration", "90": "90 what?", "315360000": "what?",
		"0s": "at least 1s", "0d0h": "at least 1s", "500ms": "at least 1s",
		"3651d": "at most 10 years", "99999999d": "too long", "99999999999999999999999d": "too long",
		"18446744073709551615s": "too long", "3650d1s": "at most 10 years", "2562047h": "too long",
	}
	for in, want := range bad {
		if got, err := parseLifetime(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseLifetime(%q) = %d, %v; want an error saying %q", in, got, err, want)
		}
	}
}

// TestTokenStartingWithHyphen: invite tokens are base64url, so some start
// with '-'; they are accepted as flag values and, after "--", as the
// argument of invite revoke.
func TestTokenStartingWithHyphen(t *testing.T) {
	dir := t.TempDir()
	srv := "--server=ws://127.0.0.1:1"
	for _, args := range [][]string{
		{"join", "ops", srv, "--token", "-xbE5CLoj1MBPuJX_Fos4VWNro4HmNX7"},
		{"invite", "revoke", srv, "--token", "-xbE5CLoj1MBPuJX_Fos4VWNro4HmNX7"},
		{"invite", "revoke", srv, "--", "-xbE5CLoj1MBPuJX_Fos4VWNro4HmNX7"},
	} {
		// Parsed fine: the verb fails only for want of a registration.
		fails(t, 1, "not registered", nil, append([]string{"--config-dir", dir}, args...)...)
	}
	fails(t, 1, "give the token once", nil, "--config-dir", dir, "invite", "revoke", "abc", "--token", "abc")
}
