package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/conclave/conclave/protocol"
)

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogsNeverCarrySecrets runs a session through every path that handles
// a message body, an invite token or key material, at debug level in both
// log formats, and checks that none of them reaches a log line.
func TestLogsNeverCarrySecrets(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf syncBuffer
			opts := &slog.HandlerOptions{Level: slog.LevelDebug}
			var h slog.Handler = slog.NewTextHandler(&buf, opts)
			if format == "json" {
				h = slog.NewJSONHandler(&buf, opts)
			}
			env := newTestEnv(t, Config{Logger: slog.New(h)})
			key := newKey(t)
			a, _ := env.handshake(key, "s", &protocol.Frame{Username: "aaron", Machine: "wa"})
			b := env.register("bob", "m", "s")
			a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops", Visibility: "private"})
			a.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
			inv := a.ok(&protocol.Frame{Type: protocol.TInviteCreate, Channel: "ops"})
			b.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops", Token: inv.Token})
			a.ok(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: body("SECRET-BODY-1")})
			a.ok(&protocol.Frame{Type: protocol.TWhisper, Target: "bob/m/s", Body: body("SECRET-BODY-2")})
			b.fail(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "nope", Body: body("SECRET-BODY-3")}, protocol.CodeNotFound)
			a.ok(&protocol.Frame{Type: protocol.TInviteRevoke, Token: inv.Token})
			laptop := newKey(t)
			a.ok(&protocol.Frame{Type: protocol.TMachineAdd, Machine: "laptop", Pubkey: pubOf(laptop)})
			env.close()

			logs := buf.String()
			if !strings.Contains(logs, "session established") {
				t.Fatalf("logs are missing lifecycle lines:\n%s", logs)
			}
			secrets := map[string]string{
				"body":         "SECRET-BODY",
				"invite token": inv.Token,
				"private key":  base64.StdEncoding.EncodeToString(key.Seed()),
				"public key":   base64.StdEncoding.EncodeToString(pubOf(laptop)),
				"raw key":      base64.RawURLEncoding.EncodeToString(pubOf(key)),
			}
			for what, s := range secrets {
				if strings.Contains(logs, s) {
					t.Errorf("a log line carries the %s %q", what, s)
				}
			}
		})
	}
}

// TestJSONLogLinesHaveUniqueKeys: no JSON log line carries a key twice
// (an attribute named msg, time or level would repeat slog's own), through
// a session's life and a refused handshake.
func TestJSONLogLinesHaveUniqueKeys(t *testing.T) {
	var buf syncBuffer
	env := newTestEnv(t, Config{Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	a := env.register("aaron", "wa", "s")
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	if _, f := env.handshake(newKey(t), "s", &protocol.Frame{Username: "aaron", Machine: "m"}); f.Type != protocol.TError {
		t.Fatalf("a taken username was accepted: %+v", f)
	}
	env.close()
	logs := buf.String()
	if !strings.Contains(logs, `"msg":"handshake refused"`) {
		t.Fatalf("no refused handshake in the logs:\n%s", logs)
	}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		dec := json.NewDecoder(strings.NewReader(line))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("log line is not a JSON object: %s", line)
		}
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				t.Fatalf("log line %s: %v", line, err)
			}
			key := tok.(string)
			if seen[key] {
				t.Errorf("log line carries %q twice: %s", key, line)
			}
			seen[key] = true
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("log line %s: %v", line, err)
			}
		}
	}
}
