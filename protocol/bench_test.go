package protocol

import (
	"strings"
	"testing"
)

var benchBody = strings.Repeat("x", 200)

// BenchmarkEncodeDelivery encodes the channel_msg delivery a post fans
// out (once per post, not per recipient).
func BenchmarkEncodeDelivery(b *testing.B) {
	f := &Frame{Type: TChannelMsg, Channel: "ops", From: "alice/laptop/main", Body: &benchBody, TsMs: 1767225600000, Seq: 123456}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(f); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeAck encodes the ack of a post.
func BenchmarkEncodeAck(b *testing.B) {
	f := &Frame{Type: TAck, ID: "1234", Seq: 123456, TsMs: 1767225600000}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(f); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodePost decodes a client's channel_msg request.
func BenchmarkDecodePost(b *testing.B) {
	msg := []byte(`{"type":"channel_msg","id":"00000000000004d2","channel":"ops","body":"` + benchBody + `"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := DecodeMessage(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeCoalesced decodes a server message of 100 coalesced
// deliveries, as a client does.
func BenchmarkDecodeCoalesced(b *testing.B) {
	line, _ := Encode(&Frame{Type: TChannelMsg, Channel: "ops", From: "alice/laptop/main", Body: &benchBody, TsMs: 1767225600000, Seq: 123456})
	var msg []byte
	for i := range 100 {
		if i > 0 {
			msg = append(msg, '\n')
		}
		msg = append(msg, line...)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		fs, err := DecodeMessage(msg)
		if err != nil || len(fs) != 100 {
			b.Fatal(len(fs), err)
		}
	}
}

// BenchmarkAppendDelivery is the server's encoder for the same delivery
// (what the fan-out uses; EncodeDelivery above is encoding/json).
func BenchmarkAppendDelivery(b *testing.B) {
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendDelivery(buf[:0], "ops", "alice/laptop/main", &benchBody, nil, 1767225600000, 123456)
	}
}

// BenchmarkAppendAck is the server's encoder for an ack.
func BenchmarkAppendAck(b *testing.B) {
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendAck(buf[:0], "1234", 1767225600000, 123456)
	}
}

// BenchmarkDecodePostJSON decodes a post that the fast path leaves to
// encoding/json (one extra member), for comparison with DecodePost.
func BenchmarkDecodePostJSON(b *testing.B) {
	msg := []byte(`{"type":"channel_msg","id":"00000000000004d2","channel":"ops","body":"` + benchBody + `","limit":0}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := DecodeMessage(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// benchCode is a body of code (191 bytes), as agents post it.
var benchCode = "func (s *Server) f(a, b int) bool {\n\tif a < b && b > 0 {\n\t\treturn fmt.Errorf(\"%s: \\\"x\\\" %q\", op, s.id) // ok ✓\n\t}\n\treturn <-ch != nil\n}\n<div class=\"m\">Tom &amp; Jerry — café 🚀</div>\n"

// BenchmarkDecodePostCode decodes a post with a code body as Go clients
// send it (<, > and & as \u003c…; quotes, newlines, tabs escaped).
func BenchmarkDecodePostCode(b *testing.B) {
	msg := AppendString([]byte(`{"type":"channel_msg","id":"00000000000004d2","channel":"ops","body":`), benchCode)
	msg = append(msg, '}')
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := DecodeMessage(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendDeliveryCode encodes the delivery of a code body.
func BenchmarkAppendDeliveryCode(b *testing.B) {
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendDelivery(buf[:0], "ops", "alice/laptop/main", &benchCode, nil, 1767225600000, 123456)
	}
}

// BenchmarkDecodeDelivery decodes one channel_msg delivery as a client
// reads it, with a plain and a code body: DecodeFromServer (the client's
// path) against Decode (which leaves deliveries to encoding/json).
func BenchmarkDecodeDelivery(b *testing.B) {
	for _, body := range []struct{ name, text string }{{"plain", benchBody}, {"code", benchCode}} {
		line := AppendDelivery(nil, "ops", "alice/laptop/main", &body.text, nil, 1767225600000, 123456)
		for _, dec := range []struct {
			name string
			fn   func([]byte) (*Frame, error)
		}{{"FromServer", DecodeFromServer}, {"Decode", Decode}} {
			b.Run(body.name+"/"+dec.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(line)))
				for b.Loop() {
					if f, err := dec.fn(line); err != nil || *f.Body != body.text {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkDecodeAck decodes the ack of a post as its sender reads it.
func BenchmarkDecodeAck(b *testing.B) {
	line := AppendAck(nil, "1234", 1767225600000, 123456)
	for _, dec := range []struct {
		name string
		fn   func([]byte) (*Frame, error)
	}{{"FromServer", DecodeFromServer}, {"Decode", Decode}} {
		b.Run(dec.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if f, err := dec.fn(line); err != nil || f.Seq != 123456 {
					b.Fatal(err)
				}
			}
		})
	}
}
