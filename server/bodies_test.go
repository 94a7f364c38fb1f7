package server

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/conclave/conclave/protocol"
)

// codeBodies are bodies as agents post them: everything a JSON encoder
// escapes, and text it does not.
var codeBodies = []string{
	"plain ascii",
	"func f(a, b int) bool {\n\treturn a < b && b > 0 // \"ok\" \\ done\n}",
	"<div class=\"x\">Tom &amp; Jerry</div>\r\n\b\f\x00\x01\x1f",
	"naïve café — 日本語 🚀 \u2028\u2029 ✓",
	"```diff\n-\told\n+\tnew `code`\n```\n$ grep -rn 'a\\|b' . | sort -u > /tmp/x",
	"",
}

// stringifyJSON encodes s as JavaScript's JSON.stringify does: only
// quotes, backslashes and control characters escaped.
func stringifyJSON(s string) []byte {
	b := []byte{'"'}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, []byte(`\u00`)...)
			b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// TestCodeBodiesArriveExact posts bodies full of escapes, encoded as Go
// and as JavaScript clients encode them, and checks that every
// subscriber, the history and the history after a restart give back the
// exact body.
func TestCodeBodiesArriveExact(t *testing.T) {
	dir := t.TempDir()
	env := newTestEnv(t, Config{DataDir: dir})
	key := newKey(t)
	a, _ := env.handshake(key, "s", &protocol.Frame{Username: "aaron", Machine: "wa"})
	d := env.register("david", "desk", "main")
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	a.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	d.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})

	var want []string
	for i, b := range codeBodies {
		goJSON, _ := json.Marshal(b)
		for k, enc := range [][]byte{goJSON, stringifyJSON(b)} {
			id := "b" + strconv.Itoa(2*i+k)
			raw := append([]byte(`{"type":"channel_msg","id":"`+id+`","channel":"ops","body":`), enc...)
			a.sendRaw(append(raw, '}'))
			if r := a.next(); r.Type != protocol.TAck || r.ID != id {
				t.Fatalf("post %s: got %+v, want its ack", raw, r)
			}
			m := d.nextOfType(protocol.TChannelMsg)
			if m.Body == nil || *m.Body != b {
				t.Fatalf("posted %s, delivered %+v, want body %q", raw, m, b)
			}
			want = append(want, b)
		}
	}
	check := func(c *client, when string) {
		t.Helper()
		h := c.ok(&protocol.Frame{Type: protocol.TReadSince, Channel: "ops"})
		got := bodies(h)
		if len(got) != len(want) {
			t.Fatalf("%s: history has %d messages, want %d", when, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: history message %d = %q, want %q", when, i, got[i], want[i])
			}
		}
	}
	check(d, "live")
	env.close()
	env2 := newTestEnv(t, Config{DataDir: dir})
	a2 := env2.login(key, "s")
	a2.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	check(a2, "after a restart")
}

// TestMalformedBodiesRefused checks that bodies that are not valid JSON
// strings are refused as malformed and the session goes on, and that a
// lone surrogate escape still becomes U+FFFD, as encoding/json makes it.
func TestMalformedBodiesRefused(t *testing.T) {
	env := newTestEnv(t, Config{})
	a := env.register("aaron", "wa", "s")
	d := env.register("david", "desk", "main")
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	a.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	d.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	for _, bad := range []string{`"\x41"`, `"\u12"`, `"\u12g4"`, `"a\'"`, "\"tab\tinside\"", "\"new\nline\"", "\"bad utf8 \xff\""} {
		a.sendRaw([]byte(`{"type":"channel_msg","id":"x","channel":"ops","body":` + bad + `}`))
		if r := a.next(); r.Type != protocol.TError || r.Code != protocol.CodeMalformed {
			t.Fatalf("body %s: got %+v, want malformed", bad, r)
		}
	}
	a.sendRaw([]byte(`{"type":"channel_msg","id":"s","channel":"ops","body":"x\ud83dy"}`))
	if r := a.next(); r.Type != protocol.TAck {
		t.Fatalf("lone surrogate: got %+v, want an ack", r)
	}
	if m := d.nextOfType(protocol.TChannelMsg); *m.Body != "x\ufffdy" {
		t.Fatalf("lone surrogate delivered as %q, want %q", *m.Body, "x\ufffdy")
	}
}
