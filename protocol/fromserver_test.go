package protocol

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"unicode/utf8"
)

// serverAccepted are frames decodeServerFrame takes; serverRefused are
// left to json.Unmarshal (which decodes some of them, refuses others).
var (
	serverAccepted = []string{
		`{"type":"channel_msg","channel":"ops","from":"alice/laptop/main","body":"hi","ts_ms":1767225600123,"seq":42}`,
		`{"type":"channel_msg","channel":"ops","from":"a/b/c","body":"","ts_ms":0,"seq":0}`,
		`{"type":"whisper","from":"bob/m/s","target":"alice/laptop/main","body":"psst","ts_ms":1}`,
		`{"type":"ack","id":"17","ts_ms":1767225600123,"seq":9}`,
		`{"type":"error","id":"3","code":"rate_limited","message":"slow down \u003c1/s\u003e"}`,
		`{"type":"pong","id":"x"}`,
		` { "seq" : 5 , "type" : "channel_msg" , "body" : "Zürich 🚀" } `,
		`{"type":"channel_msg","channel":"ops","from":"a/b/c","body":"func f() {\n\tif a \u003c b \u0026\u0026 c \u003e d { return \"x\\y\" }\n}","ts_ms":1,"seq":2}`,
		`{"type":"channel_msg","body":"emoji \ud83d\ude80 \uD83D\uDE80 \u00e9 \u2028 \u0000 \/"}`,
		`{"type":"channel_msg","body":"\\\\\\"}`,
		`{"type":"channel_msg","from":"\u0061/b/c","channel":"o\u0070s","body":"x"}`,
		// Sealed payloads.
		`{"type":"channel_msg","channel":"ops","from":"a/b/c","sealed":{"ciphertext":"AQID","key_id":"k1"},"ts_ms":1,"seq":2}`,
		`{"type":"channel_msg","sealed":{"key_id":"k\u003c1\u003e","ciphertext":"AQIDBA=="}}`,
		`{"type":"channel_msg","sealed":{"ciphertext":""}}`,
		`{"type":"channel_msg","sealed":{}}`,
		`{"type":"channel_msg","sealed":{ "ciphertext" : "AA==" }}`,
		`{"type":"channel_msg","body":"b","sealed":{"ciphertext":"AA=="}}`,
		// The edges of the numbers.
		`{"type":"ack","ts_ms":9223372036854775807,"seq":18446744073709551615}`,
		`{"type":"ack","ts_ms":-9223372036854775808,"seq":0}`,
		`{"type":"ack","ts_ms":-0,"seq":1}`,
		`{"type":"ack","ts_ms":-1}`,
		// An unknown type is decoded (Decode then refuses it).
		`{"type":"no_such_type","id":"1"}`,
	}
	serverRefused = []string{
		`{}`, `{"type":""}`, `{"id":"1"}`, `{"type":"ack","type":"ack"}`, `{"Type":"ack"}`,
		`{"type":"ack","seq":1,"seq":2}`, `{"type":"ack","id":"1",}`, `{"type":"ack"} x`,
		`{"type":"ack"`, `{"type":"ack" "id":"1"}`, `["type"]`, `{"typ\u0065":"ack"}`,
		// Members it does not know, even harmless ones.
		`{"type":"channel_msg","body":"x","extra":1}`, `{"type":"renamed","channel":"a","new_name":"b"}`,
		`{"type":"joined","id":"1","channel":"ops","seq":3,"sessions":[]}`,
		// Nulls and other types.
		`{"type":"channel_msg","body":null}`, `{"type":"channel_msg","body":1}`, `{"type":"ack","seq":null}`,
		`{"type":"ack","seq":"1"}`, `{"type":"ack","ts_ms":true}`, `{"type":"channel_msg","sealed":null}`,
		`{"type":"channel_msg","sealed":"AQID"}`, `{"type":"channel_msg","sealed":{"ciphertext":null}}`,
		// Numbers json.Unmarshal refuses for an integer, or reads another way.
		`{"type":"ack","seq":-1}`, `{"type":"ack","seq":-0}`, `{"type":"ack","seq":1.0}`, `{"type":"ack","seq":1e3}`,
		`{"type":"ack","seq":1E3}`, `{"type":"ack","seq":18446744073709551616}`,
		`{"type":"ack","ts_ms":9223372036854775808}`, `{"type":"ack","ts_ms":-9223372036854775809}`,
		`{"type":"ack","seq":01}`, `{"type":"ack","seq":+1}`, `{"type":"ack","seq":-}`, `{"type":"ack","seq":}`,
		`{"type":"ack","seq":0x10}`, `{"type":"ack","seq":1 2}`,
		// Sealed payloads it leaves alone.
		`{"type":"channel_msg","sealed":{"ciphertext":"AQI"}}`, `{"type":"channel_msg","sealed":{"ciphertext":"AQ\u0049D"}}`,
		`{"type":"channel_msg","sealed":{"ciphertext":"AQ\nID"}}`, `{"type":"channel_msg","sealed":{"ciphertext":"AQ\rID"}}`,
		`{"type":"channel_msg","sealed":{"ciphertext":"AQ!D"}}`, `{"type":"channel_msg","sealed":{"ciphertext":"AQID","ciphertext":"AQID"}}`,
		`{"type":"channel_msg","sealed":{"ciphertext":"AQID","iv":"x"}}`, `{"type":"channel_msg","sealed":{"ciphertext":"AQID",}}`,
		`{"type":"channel_msg","sealed":{"ciphertext":"AQID"}`, `{"type":"channel_msg","sealed":{"Ciphertext":"AQID"}}`,
		`{"type":"channel_msg","sealed":{"key_id":1}}`, `{"type":"channel_msg","sealed":{,}}`,
		// Lone or reversed surrogates (json.Unmarshal makes them U+FFFD).
		`{"type":"channel_msg","body":"\ud83d"}`, `{"type":"channel_msg","from":"\ude80\ud83d"}`,
		`{"type":"channel_msg","message":"\ud83d\u0041"}`,
		// Malformed strings.
		`{"type":"channel_msg","body":"\x41"}`, `{"type":"channel_msg","body":"\u12g4"}`,
		"{\"type\":\"channel_msg\",\"body\":\"a\tb\"}", `{"type":"channel_msg","body":"a\"}`,
	}
)

func TestDecodeServerFrameMatchesUnmarshal(t *testing.T) {
	for _, in := range serverAccepted {
		f, ok := decodeServerFrame(in)
		if !ok {
			t.Errorf("decodeServerFrame refused %s", in)
			continue
		}
		var want Frame
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Errorf("decodeServerFrame accepted %s, which json.Unmarshal refuses: %v", in, err)
			continue
		}
		if !reflect.DeepEqual(f, &want) {
			t.Errorf("decodeServerFrame(%s) = %+v, want %+v", in, f, &want)
		}
	}
	for _, in := range serverRefused {
		if f, ok := decodeServerFrame(in); ok {
			t.Errorf("decodeServerFrame(%s) = %+v, want it left to json.Unmarshal", in, f)
		}
	}
}

// TestDecodeFromServerAsDecode checks that DecodeFromServer gives what
// Decode gives, frame and error, for every input of both fast paths'
// tables.
func TestDecodeFromServerAsDecode(t *testing.T) {
	var all []string
	for _, list := range [][]string{serverAccepted, serverRefused, fastAccepted, fastRefused} {
		all = append(all, list...)
	}
	all = append(all, "", "  ", "\xff", `{"type":"ack","id":"\xff"}`, "[1]", "null")
	for _, in := range all {
		got, gerr := DecodeFromServer([]byte(in))
		want, werr := Decode([]byte(in))
		if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gerr, werr) {
			t.Errorf("DecodeFromServer(%q) = %+v, %v; Decode gives %+v, %v", in, got, gerr, want, werr)
		}
	}
}

// TestDecodeFromServerDeliveries decodes the server's own encodings of
// deliveries and acks (AppendDelivery, AppendAck, Encode) on the fast path,
// to the frames encoded.
func TestDecodeFromServerDeliveries(t *testing.T) {
	var frames []*Frame
	for _, s := range append(trickyStrings, benchCode) {
		if !utf8.ValidString(s) {
			continue
		}
		body := s
		for _, sealed := range []*Sealed{nil, {Ciphertext: []byte{1, 2, 3}, KeyID: s}, {Ciphertext: []byte{}}} {
			frames = append(frames,
				&Frame{Type: TChannelMsg, Channel: "ops", From: "alice/laptop/main", Body: &body, Sealed: sealed, TsMs: 1767225600123, Seq: math.MaxUint64},
				&Frame{Type: TWhisper, From: "bob/m/s", Target: "alice/laptop/main", Body: &body, Sealed: sealed, TsMs: math.MinInt64})
		}
		frames = append(frames, &Frame{Type: TError, ID: s, Code: CodeRateLimited, Message: s})
	}
	frames = append(frames, &Frame{Type: TAck, ID: "18", TsMs: math.MaxInt64, Seq: 1}, &Frame{Type: TPong, ID: "1"})
	for _, f := range frames {
		line := MustEncode(f)
		if f.Type == TChannelMsg {
			if fast := AppendDelivery(nil, f.Channel, f.From, f.Body, f.Sealed, f.TsMs, f.Seq); string(fast) != string(line) {
				t.Fatalf("AppendDelivery = %s, Encode = %s", fast, line)
			}
		}
		got, ok := decodeServerFrame(string(line))
		if !ok {
			t.Errorf("decodeServerFrame refused %s", line)
			continue
		}
		if !reflect.DeepEqual(got, f) {
			t.Errorf("decodeServerFrame(%s) = %+v, want %+v", line, got, f)
		}
	}
	ack := AppendAck(nil, "42", 1767225600123, 7)
	if got, ok := decodeServerFrame(string(ack)); !ok || got.ID != "42" || got.Seq != 7 || got.TsMs != 1767225600123 {
		t.Errorf("decodeServerFrame(%s) = %+v, %v", ack, got, ok)
	}
}

func TestDecodeMessageFromServer(t *testing.T) {
	msg := []byte(`{"type":"ack","id":"1","seq":1}` + "\n\n" + `{"type":"renamed","channel":"a","new_name":"b"}` + "\n" +
		`{"type":"channel_msg","channel":"b","body":"x","seq":2}` + "\n")
	got, gerr := DecodeMessageFromServer(msg)
	want, werr := DecodeMessage(msg)
	if gerr != nil || werr != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("DecodeMessageFromServer = %+v, %v; DecodeMessage gives %+v, %v", got, gerr, want, werr)
	}
	for _, bad := range []string{"", "\n \n", `{"type":"ack"}` + "\n" + `{"type":"nope"}` + "\n" + `{"type":"ack"}`, "{\n}"} {
		got, gerr := DecodeMessageFromServer([]byte(bad))
		want, werr := DecodeMessage([]byte(bad))
		if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gerr, werr) {
			t.Errorf("DecodeMessageFromServer(%q) = %+v, %v; DecodeMessage gives %+v, %v", bad, got, gerr, want, werr)
		}
	}
}

// FuzzDecodeFromServer checks that what the fast path for server frames
// takes, json.Unmarshal decodes to the same frame, and that
// DecodeFromServer always agrees with Decode.
func FuzzDecodeFromServer(f *testing.F) {
	for _, list := range [][]string{serverAccepted, serverRefused, fastAccepted} {
		for _, in := range list {
			f.Add([]byte(in))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, gerr := DecodeFromServer(b)
		want, werr := Decode(b)
		if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gerr, werr) {
			t.Fatalf("DecodeFromServer(%q) = %+v, %v; Decode gives %+v, %v", b, got, gerr, want, werr)
		}
		if !utf8.Valid(b) {
			return
		}
		fast, ok := decodeServerFrame(string(b))
		if !ok {
			return
		}
		var ref Frame
		if err := json.Unmarshal(b, &ref); err != nil {
			t.Fatalf("decodeServerFrame accepted %q, which json.Unmarshal refuses: %v", b, err)
		}
		if !reflect.DeepEqual(fast, &ref) {
			t.Fatalf("decodeServerFrame(%q) = %+v, want %+v", b, fast, &ref)
		}
	})
}

// FuzzDecodeDelivery checks that any delivery the server encodes, with any
// valid UTF-8 strings and any numbers, takes the fast path and decodes to
// exactly itself.
func FuzzDecodeDelivery(f *testing.F) {
	for _, s := range trickyStrings {
		f.Add(s, "alice/laptop/main", int64(1767225600123), uint64(7), []byte(nil))
	}
	f.Add(benchCode, "a/b/c", int64(math.MinInt64), uint64(math.MaxUint64), []byte{0, 1, 255})
	f.Fuzz(func(t *testing.T, body, from string, ts int64, seq uint64, ciphertext []byte) {
		if !utf8.ValidString(body) || !utf8.ValidString(from) {
			return
		}
		var sealed *Sealed
		if ciphertext != nil {
			sealed = &Sealed{Ciphertext: ciphertext, KeyID: from}
		}
		want := &Frame{Type: TChannelMsg, Channel: "ops", From: from, Body: &body, Sealed: sealed, TsMs: ts, Seq: seq}
		line := AppendDelivery(nil, want.Channel, want.From, want.Body, want.Sealed, want.TsMs, want.Seq)
		got, ok := decodeServerFrame(string(line))
		if !ok {
			t.Fatalf("decodeServerFrame refused %s", line)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeServerFrame(%s) = %+v, want %+v", line, got, want)
		}
		ack := AppendAck(nil, from, ts, seq)
		if got, ok := decodeServerFrame(string(ack)); !ok || got.ID != from || got.TsMs != ts || got.Seq != seq {
			t.Fatalf("decodeServerFrame(%s) = %+v, %v", ack, got, ok)
		}
	})
}
