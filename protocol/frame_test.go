package protocol

import (
	"errors"
	"strings"
	"testing"
)

func str(s string) *string { return &s }

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "empty frame"},
		{"not json", "hello", "not a JSON object"},
		{"array", "[1]", "not a JSON object"},
		{"bad json", `{"type":`, "invalid JSON"},
		{"no type", `{"id":"1"}`, "no \"type\""},
		{"unknown type", `{"type":"launch_missiles"}`, "unknown frame type"},
		{"wrong field type", `{"type":"join","channel":5}`, "wrong type"},
		{"invalid utf8", "{\"type\":\"join\",\"channel\":\"\xff\"}", "UTF-8"},
		{"deep nesting", `{"type":"join","x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, "invalid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.in))
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != CodeMalformed || !strings.Contains(pe.Message, tt.want) {
				t.Fatalf("Decode(%.40q) error = %v, want malformed containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestDecodeMessageSplitsJSONLines(t *testing.T) {
	msg := `{"type":"pong","id":"1"}` + "\n" + `{"type":"channel_msg","channel":"ops","from":"a/b/c","body":"hi"}` + "\n"
	frames, err := DecodeMessage([]byte(msg))
	if err != nil || len(frames) != 2 || frames[0].Type != TPong || *frames[1].Body != "hi" {
		t.Fatalf("DecodeMessage = %v, %v", frames, err)
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	admin := true
	in := &Frame{Type: TEstablished, Path: "a/b/c", Admin: &admin, ServerID: "x"}
	b, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "\n") {
		t.Fatalf("encoded frame has a newline: %s", b)
	}
	out, err := Decode(b)
	if err != nil || out.Path != "a/b/c" || !*out.Admin {
		t.Fatalf("round trip = %+v, %v", out, err)
	}
}

func TestValidate(t *testing.T) {
	key := make([]byte, 32)
	sig := make([]byte, 64)
	tests := []struct {
		name string
		f    Frame
		code Code // "" = valid
	}{
		{"hello", Frame{Type: THello, Version: 1, Session: "main"}, ""},
		{"hello v2", Frame{Type: THello, Version: 2, Session: "main"}, CodeVersionMismatch},
		{"hello bad handle", Frame{Type: THello, Version: 1, Session: "s/1"}, CodeMalformed},
		{"register", Frame{Type: TRegister, Username: "alice", Machine: "wa", Pubkey: key}, ""},
		{"register slash", Frame{Type: TRegister, Username: "aa/ron", Machine: "wa", Pubkey: key}, CodeMalformed},
		{"register short key", Frame{Type: TRegister, Username: "a", Machine: "wa", Pubkey: key[:31]}, CodeMalformed},
		{"auth", Frame{Type: TAuth, Pubkey: key, Signature: sig}, ""},
		{"auth short sig", Frame{Type: TAuth, Pubkey: key, Signature: sig[:10]}, CodeMalformed},
		{"join", Frame{Type: TJoin, ID: "1", Channel: "ops"}, ""},
		{"join no id", Frame{Type: TJoin, Channel: "ops"}, CodeMalformed},
		{"join long name", Frame{Type: TJoin, ID: "1", Channel: strings.Repeat("x", 65)}, CodeMalformed},
		{"ping without id", Frame{Type: TPing}, ""},
		{"long id", Frame{Type: TPing, ID: strings.Repeat("i", 65)}, CodeMalformed},
		{"post", Frame{Type: TChannelMsg, ID: "1", Channel: "ops", Body: str("hi")}, ""},
		{"post no body", Frame{Type: TChannelMsg, ID: "1", Channel: "ops"}, CodeMalformed},
		{"post both", Frame{Type: TChannelMsg, ID: "1", Channel: "ops", Body: str("x"), Sealed: &Sealed{}}, CodeMalformed},
		{"whisper", Frame{Type: TWhisper, ID: "1", Target: "a/b/c", Body: str("x")}, ""},
		{"delivery", Frame{Type: TChannelMsg, Channel: "ops", From: "a/b/c", TsMs: 1, Body: str("hi")}, ""},
		{"delivery bad from", Frame{Type: TChannelMsg, Channel: "ops", From: "a/b", TsMs: 1, Body: str("hi")}, CodeMalformed},
		{"whisper delivery", Frame{Type: TWhisper, Target: "a/b/c", From: "d/e/f", TsMs: 1, Body: str("x")}, ""},
		{"whisper bad target", Frame{Type: TWhisper, ID: "1", Target: "a/b", Body: str("x")}, CodeMalformed},
		{"create bad visibility", Frame{Type: TCreateChannel, ID: "1", Channel: "c", Visibility: "secret"}, CodeMalformed},
		{"kick user", Frame{Type: TKick, ID: "1", Channel: "c", Target: "bob"}, ""},
		{"kick path", Frame{Type: TKick, ID: "1", Channel: "c", Target: "bob/m/s"}, ""},
		{"invite zero uses", Frame{Type: TInviteCreate, ID: "1", Channel: "c", Uses: new(int64)}, CodeMalformed},
		{"read both", Frame{Type: TReadSince, ID: "1", Channel: "c", AfterSeq: new(uint64), SinceMs: new(int64)}, CodeMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.f.Validate()
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != tt.code {
				t.Fatalf("Validate() = %v, want code %s", err, tt.code)
			}
		})
	}
}

func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"hello","version":1,"session":"main"}`,
		`{"type":"channel_msg","id":"1","channel":"ops","body":"hi"}`,
		`{"type":"auth","pubkey":"AAAA","signature":"AAAA"}`,
		`{"type":"read_since","id":"2","channel":"ops","after_seq":5}`,
		"{\"type\":\"ping\"}\n{\"type\":\"who\",\"id\":\"3\"}",
		`[`, ``, `{"type":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		frames, err := DecodeMessage(b)
		if err != nil {
			return
		}
		for _, fr := range frames {
			_ = fr.Validate()
			if _, err := Encode(fr); err != nil {
				t.Fatalf("decoded frame does not re-encode: %v", err)
			}
		}
	})
}
