package protocol

import (
	"encoding/base64"
	"strconv"
	"strings"
	"unicode/utf16"
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
	dst = appendDeliveryHead(dst, channel, from)
	dst = appendPayload(dst, body, sealed)
	return appendDeliveryTail(dst, tsMs, seq)
}

// AppendPayload appends a post's payload members as AppendDelivery writes
// them: `,"body":…` and/or `,"sealed":…`. The server encodes a post's
// payload once, for its history record, and reuses the bytes in the
// delivery (see AppendDeliveryPayload).
func AppendPayload(dst []byte, body *string, sealed *Sealed) []byte {
	return appendPayload(dst, body, sealed)
}

// AppendDeliveryPayload is AppendDelivery with the payload already
// encoded by AppendPayload.
func AppendDeliveryPayload(dst []byte, channel, from string, payload []byte, tsMs int64, seq uint64) []byte {
	dst = appendDeliveryHead(dst, channel, from)
	dst = append(dst, payload...)
	return appendDeliveryTail(dst, tsMs, seq)
}

// appendDeliveryHead and appendDeliveryTail write the members of a
// channel_msg before and after its payload.
func appendDeliveryHead(dst []byte, channel, from string) []byte {
	dst = append(dst, `{"type":"channel_msg"`...)
	if channel != "" {
		dst = append(dst, `,"channel":`...)
		dst = AppendString(dst, channel)
	}
	if from != "" {
		dst = append(dst, `,"from":`...)
		dst = AppendString(dst, from)
	}
	return dst
}

func appendDeliveryTail(dst []byte, tsMs int64, seq uint64) []byte {
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
// id, channel, target and body, each once, each a string, separated by
// optional JSON whitespace. Strings may hold any of JSON's escapes (code
// posted by agents is full of quotes, backslashes, newlines and tabs, and
// Go clients send <, > and & as \u003c…); a \u escape of a UTF-16
// surrogate that is not half of a valid pair is left to json.Unmarshal,
// as is a key with an escape. It reports false for anything else, which
// then goes through json.Unmarshal; for what it accepts, the result is the
// one json.Unmarshal would give. b must be valid UTF-8.
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
		val, k, ok := jsonString(b, skipSpace(b, j+1))
		if !ok {
			return nil, false
		}
		var bit uint8
		switch string(key) {
		case "type":
			bit, f.Type = 1, val
		case "id":
			bit, f.ID = 2, val
		case "channel":
			bit, f.Channel = 4, val
		case "target":
			bit, f.Target = 8, val
		case "body":
			body := val
			bit, f.Body = 16, &body
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

func skipSpace[T ~string | ~[]byte](b T, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainString reads a JSON string at b[i] that has no escapes and no
// control characters and returns its contents and the index after it.
func plainString[T ~string | ~[]byte](b T, i int) (T, int, bool) {
	var none T
	if i >= len(b) || b[i] != '"' {
		return none, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return none, 0, false
		}
	}
	return none, 0, false
}

// jsonString reads the JSON string at b[i], with its escapes, and returns
// its value and the index after it. It reports false for what is not a
// well-formed string (a control character, a bad escape, no closing
// quote) and for a \u escape of a surrogate that is not half of a valid
// pair (which json.Unmarshal replaces by U+FFFD). b must be valid UTF-8.
func jsonString(b []byte, i int) (string, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return "", 0, false
	}
	start := i + 1
	j := start
	for ; j < len(b); j++ {
		c := b[j]
		if c == '"' {
			return string(b[start:j]), j + 1, true
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", 0, false
		}
	}
	if j >= len(b) {
		return "", 0, false
	}
	// Escapes: the value is shorter than its encoding, which bounds it.
	var sb strings.Builder
	sb.Grow(len(b) - start)
	sb.Write(b[start:j])
	for j < len(b) {
		c := b[j]
		switch {
		case c == '"':
			return sb.String(), j + 1, true
		case c < 0x20:
			return "", 0, false
		case c != '\\':
			k := j + 1
			for k < len(b) && b[k] != '"' && b[k] != '\\' && b[k] >= 0x20 {
				k++
			}
			sb.Write(b[j:k])
			j = k
			continue
		}
		if j+1 >= len(b) {
			return "", 0, false
		}
		switch e := b[j+1]; e {
		case '"', '\\', '/':
			sb.WriteByte(e)
		case 'b':
			sb.WriteByte('\b')
		case 'f':
			sb.WriteByte('\f')
		case 'n':
			sb.WriteByte('\n')
		case 'r':
			sb.WriteByte('\r')
		case 't':
			sb.WriteByte('\t')
		case 'u':
			r, ok := hex4(b, j+2)
			if !ok {
				return "", 0, false
			}
			if utf16.IsSurrogate(r) {
				if j+12 > len(b) || b[j+6] != '\\' || b[j+7] != 'u' {
					return "", 0, false
				}
				r2, ok := hex4(b, j+8)
				if !ok {
					return "", 0, false
				}
				if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
					return "", 0, false
				}
				j += 6
			}
			sb.WriteRune(r)
			j += 6
			continue
		default:
			return "", 0, false
		}
		j += 2
	}
	return "", 0, false
}

// hex4 reads the four hex digits of a \u escape at b[i].
func hex4[T ~string | ~[]byte](b T, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for k := i; k < i+4; k++ {
		c := b[k]
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
