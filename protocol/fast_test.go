package protocol

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

var trickyStrings = []string{
	"", "ops", "hello, world", `quote " backslash \ slash /`, "<script>&amp;</script>",
	"tab\tnewline\ncr\rbs\bff\f", "\x00\x01\x1f\x7f", "Zürich 🚀 日本", "\u2028\u2029",
	"bad utf8 \xff\xfe end", "\xc3", "trailing \xe2\x82", string(make([]byte, 300)),
}

func TestAppendStringMatchesJSON(t *testing.T) {
	for _, s := range trickyStrings {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("AppendString(%q) = %s, want %s", s, got, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range trickyStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("AppendString(%q) = %s, want %s", s, got, want)
		}
	})
}

func TestAppendDeliveryMatchesEncode(t *testing.T) {
	empty := ""
	for _, body := range []*string{nil, &empty, &trickyStrings[4], &trickyStrings[7], &trickyStrings[9]} {
		for _, sealed := range []*Sealed{nil, {Ciphertext: []byte{1, 2, 3}}, {Ciphertext: []byte{}, KeyID: "k<1>"}, {KeyID: "k"}} {
			for _, channel := range []string{"", "ops", "a&b"} {
				for _, n := range []int64{0, 1767225600123} {
					f := &Frame{Type: TChannelMsg, Channel: channel, From: "alice/laptop/main", Body: body, Sealed: sealed, TsMs: n, Seq: uint64(n / 7)}
					want := MustEncode(f)
					if got := AppendDelivery(nil, f.Channel, f.From, f.Body, f.Sealed, f.TsMs, f.Seq); !bytes.Equal(got, want) {
						t.Errorf("AppendDelivery = %s\nwant %s", got, want)
					}
					payload := AppendPayload(nil, f.Body, f.Sealed)
					if got := AppendDeliveryPayload(nil, f.Channel, f.From, payload, f.TsMs, f.Seq); !bytes.Equal(got, want) {
						t.Errorf("AppendDeliveryPayload = %s\nwant %s", got, want)
					}
				}
			}
		}
	}
}

func TestAppendAckMatchesEncode(t *testing.T) {
	for _, id := range []string{"", "1", "a\"b", "<id>"} {
		for _, n := range []int64{0, 1767225600123} {
			f := &Frame{Type: TAck, ID: id, TsMs: n, Seq: uint64(n)}
			want := MustEncode(f)
			if got := AppendAck(nil, f.ID, f.TsMs, f.Seq); !bytes.Equal(got, want) {
				t.Errorf("AppendAck = %s, want %s", got, want)
			}
		}
	}
}

// fastAccepted are inputs decodeFast takes; fastRefused are left to
// json.Unmarshal.
var (
	fastAccepted = []string{
		`{"type":"channel_msg","id":"7","channel":"ops","body":"hi"}`,
		`{"type":"channel_msg","id":"7","channel":"ops","body":""}`,
		` { "type" : "whisper" , "id":"1", "target":"a/b/c", "body":"Zürich 🚀" } `,
		`{"type":"ping"}`,
		`{"type":"ping","id":"x"}`,
		`{"body":"b","type":"channel_msg","channel":"c","id":"9"}`,
		`{"type":"channel_msg","body":"a\nb"}`, `{"type":"channel_msg","body":"a\"b"}`,
		`{"type":"channel_msg","id":"1","channel":"ops","body":"func f() {\n\tif a \u003c b \u0026\u0026 c \u003e d { return \"x\\y\" }\n}"}`,
		`{"type":"channel_msg","id":"1","channel":"ops","body":"if a < b && c > d { return \"x\\y\" }\r\n\b\f\/"}`,
		`{"type":"channel_msg","id":"1","channel":"ops","body":"emoji \ud83d\ude80 \uD83D\uDE80 \u00e9\u00E9 \u2028 \u0000"}`,
		`{"type":"channel_msg","id":"\u0031","channel":"o\u0070s","body":"x"}`,
		`{"type":"channel_msg","body":"\\\\\\"}`,
	}
	fastRefused = []string{
		`{}`, `{"type":""}`, `{"id":"1"}`, `{"type":"ping","type":"pong"}`, `{"Type":"ping"}`,
		`{"type":"ping","id":"1",}`, `{"type":"ping"} x`, `{"type":"ping","version":1}`,
		`{"type":"channel_msg","body":null}`, `{"type":"channel_msg","body":1}`, `{"type":"ping"`,
		`{"type":"ping","id":"1"`, `{"type":"ping" "id":"1"}`, `["type"]`, `{"type":"ping",}`,
		`{"typ\u0065":"ping"}`,
		// Lone or reversed surrogates (json.Unmarshal makes them U+FFFD).
		`{"type":"channel_msg","body":"\ud83d"}`, `{"type":"channel_msg","body":"\ud83dx"}`,
		`{"type":"channel_msg","body":"\ude80\ud83d"}`, `{"type":"channel_msg","body":"\ud83d\u0041"}`,
		`{"type":"channel_msg","body":"\ud83d\n"}`,
		// Malformed: bad escapes, control characters, unterminated.
		`{"type":"channel_msg","body":"\x41"}`, `{"type":"channel_msg","body":"\u12"}`,
		`{"type":"channel_msg","body":"\u12g4"}`, `{"type":"channel_msg","body":"a\`,
		`{"type":"channel_msg","body":"a\"}`, "{\"type\":\"channel_msg\",\"body\":\"a\tb\"}",
		"{\"type\":\"channel_msg\",\"body\":\"a\\n\nb\"}", `{"type":"channel_msg","body":"\'"}`,
	}
)

func TestDecodeFastMatchesUnmarshal(t *testing.T) {
	for _, in := range fastAccepted {
		f, ok := decodeFast([]byte(in))
		if !ok {
			t.Errorf("decodeFast refused %s", in)
			continue
		}
		var want Frame
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Errorf("decodeFast accepted %s, which json.Unmarshal refuses: %v", in, err)
			continue
		}
		if !reflect.DeepEqual(f, &want) {
			t.Errorf("decodeFast(%s) = %+v, want %+v", in, f, &want)
		}
	}
	for _, in := range fastRefused {
		if f, ok := decodeFast([]byte(in)); ok {
			t.Errorf("decodeFast(%s) = %+v, want it left to json.Unmarshal", in, f)
		}
	}
}

// TestDecodeRefusesAsBefore checks that what the fast path leaves alone is
// still refused, or decoded, by json.Unmarshal exactly as before.
func TestDecodeRefusesAsBefore(t *testing.T) {
	for _, in := range fastRefused {
		got, gerr := Decode([]byte(in))
		var want Frame
		werr := json.Unmarshal([]byte(in), &want)
		if werr != nil {
			if gerr == nil {
				t.Errorf("Decode(%s) = %+v, want an error (json.Unmarshal: %v)", in, got, werr)
			}
			continue
		}
		if gerr == nil && !reflect.DeepEqual(got, &want) {
			t.Errorf("Decode(%s) = %+v, want %+v", in, got, &want)
		}
	}
}

// TestDecodeBodyRoundTrip checks that every body a client can send, as
// encoding/json or JSON.stringify writes it, decodes to itself on the
// fast path.
func TestDecodeBodyRoundTrip(t *testing.T) {
	for _, body := range append(trickyStrings, "func main() {\n\tfmt.Println(\"<&>\")\n}", "日本語 🚀 \u2028 é\\n") {
		if !utf8.ValidString(body) {
			continue
		}
		enc, _ := json.Marshal(&Frame{Type: TChannelMsg, ID: "1", Channel: "ops", Body: &body})
		f, ok := decodeFast(enc)
		if !ok {
			t.Errorf("decodeFast refused %s", enc)
			continue
		}
		if *f.Body != body {
			t.Errorf("body %q came back as %q", body, *f.Body)
		}
	}
}

func FuzzDecodeFast(f *testing.F) {
	for _, in := range append(fastAccepted, fastRefused...) {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !utf8.Valid(b) {
			return
		}
		got, ok := decodeFast(b)
		if !ok {
			return
		}
		var want Frame
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("decodeFast accepted %q, which json.Unmarshal refuses: %v", b, err)
		}
		if !reflect.DeepEqual(got, &want) {
			t.Fatalf("decodeFast(%q) = %+v, want %+v", b, got, &want)
		}
	})
}

// FuzzDecodeBody checks that any valid UTF-8 body, encoded by
// encoding/json or with minimal escaping (as JSON.stringify does), is
// taken by the fast path and decodes to exactly itself.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range trickyStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		if !utf8.ValidString(body) {
			return
		}
		goJSON, _ := json.Marshal(body)
		minimal := []byte{'"'}
		for i := 0; i < len(body); i++ {
			switch c := body[i]; {
			case c == '"' || c == '\\':
				minimal = append(minimal, '\\', c)
			case c < 0x20:
				minimal = append(minimal, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				minimal = append(minimal, c)
			}
		}
		minimal = append(minimal, '"')
		for _, enc := range [][]byte{goJSON, minimal} {
			msg := append([]byte(`{"type":"channel_msg","id":"1","channel":"ops","body":`), enc...)
			msg = append(msg, '}')
			fr, err := Decode(msg)
			if err != nil {
				t.Fatalf("Decode(%s): %v", msg, err)
			}
			if _, ok := decodeFast(msg); !ok {
				t.Fatalf("decodeFast refused %s", msg)
			}
			if *fr.Body != body {
				t.Fatalf("body %q decoded as %q from %s", body, *fr.Body, msg)
			}
		}
	})
}
