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

var fastDecodeInputs = []string{
	`{"type":"channel_msg","id":"7","channel":"ops","body":"hi"}`,
	`{"type":"channel_msg","id":"7","channel":"ops","body":""}`,
	` { "type" : "whisper" , "id":"1", "target":"a/b/c", "body":"Zürich 🚀" } `,
	`{"type":"ping"}`,
	`{"type":"ping","id":"x"}`,
	`{"body":"b","type":"channel_msg","channel":"c","id":"9"}`,
	// Left to json.Unmarshal:
	`{}`, `{"type":""}`, `{"id":"1"}`, `{"type":"ping","type":"pong"}`, `{"Type":"ping"}`,
	`{"type":"ping","id":"1",}`, `{"type":"ping"} x`, `{"type":"ping","version":1}`,
	`{"type":"channel_msg","body":"a\nb"}`, `{"type":"channel_msg","body":"a\"b"}`,
	`{"type":"channel_msg","body":null}`, `{"type":"channel_msg","body":1}`, `{"type":"ping"`,
	`{"type":"ping","id":"1"`, `{"type":"ping" "id":"1"}`, `["type"]`, `{"type":"ping",}`,
}

func TestDecodeFastMatchesUnmarshal(t *testing.T) {
	accepted := 0
	for _, in := range fastDecodeInputs {
		f, ok := decodeFast([]byte(in))
		if !ok {
			continue
		}
		accepted++
		var want Frame
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Errorf("decodeFast accepted %s, which json.Unmarshal refuses: %v", in, err)
			continue
		}
		if !reflect.DeepEqual(f, &want) {
			t.Errorf("decodeFast(%s) = %+v, want %+v", in, f, &want)
		}
	}
	if accepted != 6 {
		t.Errorf("decodeFast accepted %d of the inputs, want the 6 plain ones", accepted)
	}
}

func FuzzDecodeFast(f *testing.F) {
	for _, in := range fastDecodeInputs {
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
