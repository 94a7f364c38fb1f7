package orderedjson

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestRoundTrip: a document in the format Encode writes comes back byte
// for byte, key order, big numbers, escapes and empty containers kept.
func TestRoundTrip(t *testing.T) {
	doc := `{
  "zeta": 1,
  "alpha": {
    "n": 12345678901234567890,
    "s": "<a & b> \"q\" é",
    "empty": {},
    "list": [],
    "mixed": [
      true,
      null,
      1.5
    ]
  }
}
`
	v, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(Encode(v)); got != doc {
		t.Errorf("got\n%s\nwant\n%s", got, doc)
	}
	o := v.(*Object)
	if strings.Join(o.Keys(), ",") != "zeta,alpha" {
		t.Errorf("keys %v", o.Keys())
	}
	o.Set("beta", []any{"x", 3, map[string]int{"k": 1}})
	o.Set("zeta", json.Number("2"))
	o.Del("alpha")
	if got, want := string(Encode(o)), "{\n  \"zeta\": 2,\n  \"beta\": [\n    \"x\",\n    3,\n    {\"k\":1}\n  ]\n}\n"; got != want {
		t.Errorf("after edits got\n%s\nwant\n%s", got, want)
	}
}

func TestParseRefusals(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"comment after", "{}\n// note\n", "unexpected data"},
		{"two values", "{} {}", "unexpected data"},
		{"broken", `{"a": `, "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse([]byte(tt.in)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
	if _, err := ParseObject([]byte("[1]")); err == nil {
		t.Error("an array was taken for an object")
	}
	if o, err := ParseObject([]byte("  \n")); err != nil || o.Len() != 0 {
		t.Errorf("blank: %v, %v", o, err)
	}
	o := New()
	o.Set("s", "x")
	if _, err := o.Obj("s", "f.json"); err == nil || !strings.Contains(err.Error(), `f.json: "s" is not a JSON object`) {
		t.Errorf("Obj on a string: %v", err)
	}
}
