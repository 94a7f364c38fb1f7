package protocol

import (
	"bytes"
	"encoding/base64"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// A client reads mostly deliveries (channel_msg and whisper, with from,
// ts_ms, seq and perhaps a sealed payload) and the acks of its posts,
// which the server's own fast path (decodeFast, for what clients send)
// leaves to encoding/json. DecodeFromServer and DecodeMessageFromServer
// decode those frames without reflection and with few allocations: the
// frame, one copy of its line that every unescaped string value shares,
// and the unescaped value of a string with escapes. What they do not take
// goes to json.Unmarshal, so the result is always the one Decode gives.

// DecodeFromServer is [Decode] for a frame a server sent: the same result
// and the same errors, faster for deliveries, acks and error replies. The
// strings of the frame may share one copy of b, so a caller that keeps one
// small field of a large frame keeps the whole line.
func DecodeFromServer(b []byte) (*Frame, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' || !utf8.Valid(b) {
		return Decode(b)
	}
	if f, ok := decodeServerFrame(string(b)); ok {
		if !KnownType(f.Type) {
			return f, Errorf(CodeMalformed, "unknown frame type %q", truncate(f.Type, 40))
		}
		return f, nil
	}
	return Decode(b)
}

// DecodeMessageFromServer is [DecodeMessage] for a message a server sent,
// decoding each frame with [DecodeFromServer].
func DecodeMessageFromServer(b []byte) ([]*Frame, error) {
	return decodeLines(b, DecodeFromServer)
}

// frameWithBody holds a frame and its body in one allocation.
type frameWithBody struct {
	f    Frame
	body string
}

// internedTypes maps each frame type to the constant, so that a decoded
// frame's Type does not keep its line alive.
var internedTypes = func() map[string]string {
	m := make(map[string]string, len(kinds))
	for t := range kinds {
		m[t] = t
	}
	return m
}()

// Members decodeServerFrame takes, one bit each.
const (
	mType = 1 << iota
	mID
	mChannel
	mTarget
	mFrom
	mBody
	mSealed
	mTsMs
	mSeq
	mCode
	mMessage
)

// decodeServerFrame decodes the flat shape of the frames a server sends
// most: one object whose members are among type, id, channel, target,
// from, body, code and message (strings), ts_ms and seq (integers, as
// json.Unmarshal reads them into int64 and uint64: no fraction, no
// exponent, in range) and sealed (an object of ciphertext, unescaped
// base64, and key_id), each once. Strings follow decodeFast's rules. It
// reports false for anything else, which then goes through json.Unmarshal;
// for what it accepts, the result is the one json.Unmarshal would give. s
// must be valid UTF-8.
func decodeServerFrame(s string) (*Frame, bool) {
	i := skipSpace(s, 0)
	if i >= len(s) || s[i] != '{' {
		return nil, false
	}
	fb := new(frameWithBody)
	f := &fb.f
	var seen uint16
	i = skipSpace(s, i+1)
	for n := 0; ; n++ {
		if i < len(s) && s[i] == '}' && n == 0 {
			return nil, false // {} has no type: let the slow path say so
		}
		key, j, ok := plainString(s, i)
		if !ok {
			return nil, false
		}
		j = skipSpace(s, j)
		if j >= len(s) || s[j] != ':' {
			return nil, false
		}
		j = skipSpace(s, j+1)
		var bit uint16
		var k int
		switch key {
		case "ts_ms":
			bit = mTsMs
			lit, end, ok := intLiteral(s, j)
			if !ok {
				return nil, false
			}
			v, err := strconv.ParseInt(lit, 10, 64)
			if err != nil {
				return nil, false
			}
			f.TsMs, k = v, end
		case "seq":
			bit = mSeq
			lit, end, ok := intLiteral(s, j)
			if !ok {
				return nil, false
			}
			v, err := strconv.ParseUint(lit, 10, 64)
			if err != nil {
				return nil, false
			}
			f.Seq, k = v, end
		case "sealed":
			bit = mSealed
			sealed, end, ok := sealedObject(s, j)
			if !ok {
				return nil, false
			}
			f.Sealed, k = sealed, end
		default:
			val, end, ok := stringValue(s, j)
			if !ok {
				return nil, false
			}
			k = end
			switch key {
			case "type":
				bit = mType
				if t, ok := internedTypes[val]; ok {
					val = t
				}
				f.Type = val
			case "id":
				bit, f.ID = mID, val
			case "channel":
				bit, f.Channel = mChannel, val
			case "target":
				bit, f.Target = mTarget, val
			case "from":
				bit, f.From = mFrom, val
			case "body":
				bit, fb.body, f.Body = mBody, val, &fb.body
			case "code":
				bit, f.Code = mCode, Code(val)
			case "message":
				bit, f.Message = mMessage, val
			default:
				return nil, false
			}
		}
		if seen&bit != 0 {
			return nil, false
		}
		seen |= bit
		i = skipSpace(s, k)
		if i >= len(s) {
			return nil, false
		}
		if s[i] == '}' {
			if skipSpace(s, i+1) != len(s) || f.Type == "" {
				return nil, false
			}
			return f, true
		}
		if s[i] != ',' {
			return nil, false
		}
		i = skipSpace(s, i+1)
	}
}

// intLiteral reads a JSON number at s[i] that is an integer, -?(0|[1-9][0-9]*),
// and returns it and the index after it. A fraction or an exponent is
// refused (json.Unmarshal refuses them for an integer field).
func intLiteral(s string, i int) (string, int, bool) {
	j := i
	if j < len(s) && s[j] == '-' {
		j++
	}
	d := j
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	switch {
	case j == d, s[d] == '0' && j > d+1:
		return "", 0, false
	case j < len(s) && (s[j] == '.' || s[j] == 'e' || s[j] == 'E'):
		return "", 0, false
	}
	return s[i:j], j, true
}

// sealedObject reads the sealed payload at s[i]: an object whose members
// are among ciphertext (a string of base64 without escapes, decoded as
// json.Unmarshal decodes a []byte) and key_id (a string), each once.
func sealedObject(s string, i int) (*Sealed, int, bool) {
	if i >= len(s) || s[i] != '{' {
		return nil, 0, false
	}
	var sealed Sealed
	var seen uint8
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == '}' {
		return &sealed, i + 1, true
	}
	for {
		key, j, ok := plainString(s, i)
		if !ok {
			return nil, 0, false
		}
		j = skipSpace(s, j)
		if j >= len(s) || s[j] != ':' {
			return nil, 0, false
		}
		j = skipSpace(s, j+1)
		var bit uint8
		switch key {
		case "ciphertext":
			// No escapes: encoding/json hands base64 the unescaped string,
			// and base64 skips \r and \n, which only an escape can put in.
			text, end, ok := plainString(s, j)
			if !ok {
				return nil, 0, false
			}
			b, err := base64.StdEncoding.DecodeString(text)
			if err != nil {
				return nil, 0, false
			}
			bit, sealed.Ciphertext, j = 1, b, end
		case "key_id":
			val, end, ok := stringValue(s, j)
			if !ok {
				return nil, 0, false
			}
			bit, sealed.KeyID, j = 2, val, end
		default:
			return nil, 0, false
		}
		if seen&bit != 0 {
			return nil, 0, false
		}
		seen |= bit
		i = skipSpace(s, j)
		if i >= len(s) {
			return nil, 0, false
		}
		if s[i] == '}' {
			return &sealed, i + 1, true
		}
		if s[i] != ',' {
			return nil, 0, false
		}
		i = skipSpace(s, i+1)
	}
}

// stringValue is jsonString for a string: a value without escapes is a
// substring of s, not a copy. The two must agree; both are fuzzed against
// json.Unmarshal.
func stringValue(s string, i int) (string, int, bool) {
	if i >= len(s) || s[i] != '"' {
		return "", 0, false
	}
	start := i + 1
	j := start
	for ; j < len(s); j++ {
		c := s[j]
		if c == '"' {
			return s[start:j], j + 1, true
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", 0, false
		}
	}
	if j >= len(s) {
		return "", 0, false
	}
	var sb strings.Builder
	sb.Grow(len(s) - start)
	sb.WriteString(s[start:j])
	for j < len(s) {
		c := s[j]
		switch {
		case c == '"':
			return sb.String(), j + 1, true
		case c < 0x20:
			return "", 0, false
		case c != '\\':
			k := j + 1
			for k < len(s) && s[k] != '"' && s[k] != '\\' && s[k] >= 0x20 {
				k++
			}
			sb.WriteString(s[j:k])
			j = k
			continue
		}
		if j+1 >= len(s) {
			return "", 0, false
		}
		switch e := s[j+1]; e {
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
			r, ok := hex4(s, j+2)
			if !ok {
				return "", 0, false
			}
			if utf16.IsSurrogate(r) {
				if j+12 > len(s) || s[j+6] != '\\' || s[j+7] != 'u' {
					return "", 0, false
				}
				r2, ok := hex4(s, j+8)
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
