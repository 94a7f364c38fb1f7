package main

import (
	"strings"
	"testing"
)

// TestTimeFlagsShareOneGrammar: every flag that takes a point in time
// accepts and refuses the same words, and every flag that takes a
// duration the same durations. A bare number is refused with a hint
// everywhere (it once meant seconds to tail and nothing to audit), and
// 1d12h is accepted everywhere (it once worked for audit only).
func TestTimeFlagsShareOneGrammar(t *testing.T) {
	cfg, data := t.TempDir(), t.TempDir()
	fails(t, 1, "90 what? write 90s or 90m", nil, "--config-dir", cfg, "tail", "--channel", "ops", "--since", "90")
	fails(t, 1, "90 what? write 90s or 90m", nil, "audit", "--data-dir", data, "--since", "90")
	fails(t, 1, "90 what? write 90s or 90m", nil, "serve", "--data-dir", data, "--history-retention", "90")
	fails(t, 1, "90 what? write 90s or 90m", nil, "--config-dir", cfg, "invite", "create", "--channel", "ops", "--expires-in", "90")
	// 1d12h gets past the parser: tail then fails for want of a
	// registration, audit for want of a data dir, not on the time.
	r := fails(t, 1, "", nil, "--config-dir", cfg, "tail", "--channel", "ops", "--since", "1d12h")
	if strings.Contains(r.stderr, "1d12h") {
		t.Errorf("tail refused 1d12h: %s", r.stderr)
	}
	fails(t, 1, "is not a conclave data dir", nil, "audit", "--data-dir", data, "--since", "1d12h", "--until", "2w")
}
