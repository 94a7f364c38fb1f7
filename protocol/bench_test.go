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
