package projections

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// Fields are the names an event body may carry, whatever its type: the
// union of the *Data structs' naming fields. It is what a reader that only
// summarises or filters events (the audit listing, the server's audit
// index) needs, decoded once, here.
type Fields struct {
	User       string `json:"user"`
	Machine    string `json:"machine"`
	Channel    string `json:"channel"`
	NewName    string `json:"new_name"`
	Visibility string `json:"visibility"`
	Token      string `json:"token"`
	Target     string `json:"target"`
}

// DecodeFields decodes the naming fields of an event body leniently: a
// field that is missing or of another type stays empty, and a body that
// is not a JSON object has none.
func DecodeFields(data []byte) Fields {
	var f Fields
	// On a type mismatch Unmarshal still fills the other fields.
	_ = json.Unmarshal(data, &f)
	return f
}

// redactKeep is how many characters of an invite token its redacted form
// keeps.
const redactKeep = 6

// redactMark ends a redacted token.
const redactMark = "…"

// RedactToken is the one rule for showing an invite token to someone who
// may not use it: its first six characters and "…" (half of a token
// shorter than twelve characters, so a short token is never shown whole).
// An empty token stays empty, and a token already redacted (ending in
// "…") is returned as it is, so redacting twice (by a server and then by
// its client) changes nothing.
func RedactToken(token string) string {
	if token == "" || strings.HasSuffix(token, redactMark) {
		return token
	}
	n := utf8.RuneCountInString(token)
	keep := min(redactKeep, n/2)
	i := 0
	for k := 0; k < keep; k++ {
		_, size := utf8.DecodeRuneInString(token[i:])
		i += size
	}
	return token[:i] + redactMark
}

// RedactData returns an event body with every top-level "token" string
// (in any letter case: encoding/json matches names that way) replaced by
// [RedactToken], as compact JSON without HTML escaping. A body with no
// token, or that is not a JSON object, is returned unchanged.
func RedactData(data []byte) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return data
	}
	masked := false
	for k, raw := range m {
		var tok string
		if strings.EqualFold(k, "token") && json.Unmarshal(raw, &tok) == nil && tok != "" {
			m[k], _ = marshalText(RedactToken(tok))
			masked = true
		}
	}
	if !masked {
		return data
	}
	b, err := marshalText(m)
	if err != nil {
		return data
	}
	return b
}

// marshalText encodes v without escaping <, > and & (event bodies are not
// HTML).
func marshalText(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
