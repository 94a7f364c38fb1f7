package protocol

import (
	"encoding/base64"
	"strconv"
	"unicode/utf8"
)

// The hot paths of the server — a post's delivery, its ack, its history
// record, and the decoding of the posts themselves — skip encoding/json's
// reflection. The encoders below produce exactly the bytes json.Marshal
// produces for the same values (fast_test.go checks them against it, also
// on fuzzed strings); the decoder accepts only the plain shape clients
// send and leaves anything else to json.Unmarshal.

// AppendDelivery appends the channel_msg delivery of a post (what
// Encode(&Frame{Type: TChannelMsg, Channel, From, Body, Sealed, TsMs, Seq})
// returns).
func AppendDelivery(dst []byte, channel, from string, body *string, sealed *Sealed, tsMs int64, seq uint64) []byte {
	dst = append(dst, `{"type":"channel_msg"`...)
	if channel != "" {
		dst = append(dst, `,"channel":`...)
		dst = AppendString(dst, channel)
	}
	if from != "" {
		dst = append(dst, `,"from":`...)
		dst = AppendString(dst, from)
	}
	dst = appendPayload(dst, body, sealed)
	if tsMs != 0 {
		dst = append(dst, `,"ts_ms":`...)
		dst = strconv.AppendInt(dst, tsMs, 10)
	}
	if seq != 0 {
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendUint(dst, seq, 10)
	}
	return append(dst, '}')
}

// AppendAck appends the ack of a stored post (what Encode(&Frame{Type:
// TAck, ID, TsMs, Seq}) returns).
func AppendAck(dst []byte, id string, tsMs int64, seq uint64) []byte {
	dst = append(dst, `{"type":"ack"`...)
	if id != "" {
		dst = append(dst, `,"id":`...)
		dst = AppendString(dst, id)
	}
	if tsMs != 0 {
		dst = append(dst, `,"ts_ms":`...)
		dst = strconv.AppendInt(dst, tsMs, 10)
	}
	if seq != 0 {
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendUint(dst, seq, 10)
	}
	return append(dst, '}')
}

// appendPayload appends the body and sealed fields (both omitempty
// pointers).
func appendPayload(dst []byte, body *string, sealed *Sealed) []byte {
	if body != nil {
		dst = append(dst, `,"body":`...)
		dst = AppendString(dst, *body)
	}
	if sealed != nil {
		dst = append(dst, `,"sealed":`...)
		dst = AppendSealed(dst, sealed)
	}
	return dst
}

// AppendSealed appends s as json.Marshal does.
func AppendSealed(dst []byte, s *Sealed) []byte {
	dst = append(dst, `{"ciphertext":`...)
	if s.Ciphertext == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, s.Ciphertext)
		dst = append(dst, '"')
	}
	if s.KeyID != "" {
		dst = append(dst, `,"key_id":`...)
		dst = AppendString(dst, s.KeyID)
	}
	return append(dst, '}')
}

// plainASCII marks the bytes json.Marshal copies as they are: printable
// ASCII but for the quote, the backslash and the HTML-sensitive <, > and &.
var plainASCII = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\' && b != '<' && b != '>' && b != '&'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string exactly as json.Marshal
// encodes it: HTML-sensitive characters, U+2028 and U+2029 escaped,
// invalid UTF-8 replaced by U+FFFD.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if plainASCII[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// decodeFast decodes the plain shape of the frames clients send most —
// posts, whispers, pings: one flat object whose members are among type,
// id, channel, target and body, each once, each a string without escapes
// or control characters, separated by optional JSON whitespace. It
// reports false for anything else, which then goes through
// json.Unmarshal; for what it accepts, the result is the one
// json.Unmarshal would give. b must be valid UTF-8.
func decodeFast(b []byte) (*Frame, bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	var f Frame
	var seen uint8
	i = skipSpace(b, i+1)
	for n := 0; ; n++ {
		if i < len(b) && b[i] == '}' && n == 0 {
			return nil, false // {} has no type: let the slow path say so
		}
		key, j, ok := plainString(b, i)
		if !ok {
			return nil, false
		}
		j = skipSpace(b, j)
		if j >= len(b) || b[j] != ':' {
			return nil, false
		}
		val, k, ok := plainString(b, skipSpace(b, j+1))
		if !ok {
			return nil, false
		}
		var bit uint8
		switch string(key) {
		case "type":
			bit, f.Type = 1, string(val)
		case "id":
			bit, f.ID = 2, string(val)
		case "channel":
			bit, f.Channel = 4, string(val)
		case "target":
			bit, f.Target = 8, string(val)
		case "body":
			s := string(val)
			bit, f.Body = 16, &s
		default:
			return nil, false
		}
		if seen&bit != 0 {
			return nil, false
		}
		seen |= bit
		i = skipSpace(b, k)
		if i >= len(b) {
			return nil, false
		}
		if b[i] == '}' {
			if skipSpace(b, i+1) != len(b) || f.Type == "" {
				return nil, false
			}
			return &f, true
		}
		if b[i] != ',' {
			return nil, false
		}
		i = skipSpace(b, i+1)
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainString reads a JSON string at b[i] that has no escapes and no
// control characters and returns its contents and the index after it.
func plainString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		}
	}
	return nil, 0, false
}
