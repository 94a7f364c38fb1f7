package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNewLogger(t *testing.T) {
	tests := []struct {
		name      string
		verbose   int
		env       map[string]string
		debug     bool // debug records appear
		info      bool // info records appear
		json      bool
		complaint string // a warning about the environment
	}{
		{name: "default", info: true},
		{name: "verbose", verbose: 1, debug: true, info: true},
		{name: "env wins over -v", verbose: 2, env: map[string]string{"CONCLAVE_LOG_LEVEL": "warn"}},
		{name: "env debug", env: map[string]string{"CONCLAVE_LOG_LEVEL": "DEBUG"}, debug: true, info: true},
		{name: "empty env ignored", verbose: 1, env: map[string]string{"CONCLAVE_LOG_LEVEL": " "}, debug: true, info: true},
		{name: "json", env: map[string]string{"CONCLAVE_LOG_FORMAT": "json"}, info: true, json: true},
		{name: "bad level", env: map[string]string{"CONCLAVE_LOG_LEVEL": "loud"}, info: true, complaint: "CONCLAVE_LOG_LEVEL=loud"},
		{name: "bad format", env: map[string]string{"CONCLAVE_LOG_FORMAT": "xml"}, info: true, complaint: "CONCLAVE_LOG_FORMAT=xml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := newLoggerEnv(tt.verbose, &buf, func(k string) string { return tt.env[k] })
			log.Debug("debug record")
			log.Info("info record", "channel", "ops")
			out := buf.String()
			if got := strings.Contains(out, "debug record"); got != tt.debug {
				t.Errorf("debug record logged = %v, want %v; output:\n%s", got, tt.debug, out)
			}
			if got := strings.Contains(out, "info record"); got != tt.info {
				t.Errorf("info record logged = %v, want %v; output:\n%s", got, tt.info, out)
			}
			if tt.complaint != "" && !strings.Contains(out, tt.complaint) {
				t.Errorf("output does not mention %q:\n%s", tt.complaint, out)
			}
			if tt.json {
				for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
					var m map[string]any
					if err := json.Unmarshal([]byte(line), &m); err != nil || m["msg"] == nil {
						t.Errorf("line %q is not a JSON record: %v", line, err)
					}
				}
			}
		})
	}
}
