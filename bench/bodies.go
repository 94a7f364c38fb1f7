package bench

import (
	"fmt"
	"unicode/utf8"

	"github.com/conclave/conclave/protocol"
)

// Body kinds (Options.Bodies).
const (
	// BodiesCode is what agents post: code, diffs, shell and Markdown,
	// with quotes, backslashes, newlines, tabs, <, > and &, and
	// non-ASCII text. It is the default.
	BodiesCode = "code"
	// BodiesPlain is printable ASCII with nothing a JSON encoder escapes.
	BodiesPlain = "plain"
)

// codeCorpus is the text code-like bodies are cut from: each body is a
// window of it starting at a different place, so bodies differ and hold
// a mix of everything in it.
const codeCorpus = "func (s *Server) handle(ctx context.Context, f *Frame) error {\n" +
	"\tif f.Body == nil && f.Sealed == nil {\n" +
	"\t\treturn fmt.Errorf(\"%s: no \\\"body\\\" in frame %q\", op, f.ID)\n" +
	"\t}\n" +
	"\tfor i := 0; i < len(subs) && !done; i++ { ch <- subs[i] }\n" +
	"\treturn nil // ok ✓\n" +
	"}\n" +
	"```diff\n" +
	"@@ -12,7 +12,9 @@ type Config struct {\n" +
	"-\tQueueLen int\n" +
	"+\tQueueBytes int `json:\"queue_bytes,omitempty\"` // 8 MiB → 16 MiB?\n" +
	"```\n" +
	"$ grep -rn 'TODO\\|FIXME' ./server | sort -u > /tmp/todo.txt && wc -l < /tmp/todo.txt\n" +
	"<div class=\"msg\" data-from='alice/laptop/s1'>Tom &amp; Jerry &lt;3</div>\n" +
	"if (a < b && b > c || x & 0x0f) { printf(\"%d\\t%s\\n\", n, \"naïve café\"); }\n" +
	"Résumé: tests pass — 37 ok, 0 failed; ≥ 0.9 × baseline; 日本語のテスト 🚀\n" +
	"const re = /^\\s*(\\w+)\\s*=\\s*\"([^\"]*)\"$/; // key = \"value\"\n" +
	"SELECT name, count(*) FROM users WHERE email LIKE '%@example.com' AND age >= 18;\n" +
	"def parse(s: str) -> dict[str, int]:\n    return {k: int(v) for k, v in (p.split('=') for p in s.split('&'))}\n" +
	"- [x] run `go test -race ./...` → all green\n- [ ] update docs/PERFORMANCE.md §2\n"

// plainCorpus is printable ASCII that no JSON encoder escapes.
const plainCorpus = "the quick brown fox jumps over the lazy dog 0123456789 " +
	"pack my box with five dozen liquor jugs; how vexingly quick daft zebras jump! "

// bodyVariants is how many different bodies a publisher cycles through
// per channel.
const bodyVariants = 16

// makeBodies returns bodyVariants bodies of exactly size bytes of valid
// UTF-8 (size ≥ stampLen), each starting with stampLen bytes of room for
// the stamp. Code-like bodies are windows of codeCorpus; a window that
// would end inside a multi-byte character is padded with spaces.
func makeBodies(kind string, size int) ([]string, error) {
	var corpus string
	switch kind {
	case BodiesCode, "":
		corpus = codeCorpus
	case BodiesPlain:
		corpus = plainCorpus
	default:
		return nil, fmt.Errorf("--bodies must be %s or %s", BodiesCode, BodiesPlain)
	}
	out := make([]string, bodyVariants)
	for v := range out {
		b := make([]byte, stampLen, size)
		for i := range stampLen {
			b[i] = '0'
		}
		off := v * len(corpus) / bodyVariants
		for len(b) < size {
			r, n := utf8.DecodeRuneInString(corpus[off:])
			if len(b)+n > size {
				b = append(b, ' ')
				continue
			}
			b = utf8.AppendRune(b, r)
			off += n
			if off == len(corpus) {
				off = 0
			}
		}
		out[v] = string(b)
	}
	return out, nil
}

// appendPostBody appends body as a JSON string the way a client sends it:
// even variants as Go's encoding/json writes it (HTML characters as
// \u003c…), odd variants as JavaScript's JSON.stringify writes it (only
// quotes, backslashes and control characters escaped), so that the
// server sees both.
func appendPostBody(dst []byte, body string, variant int) []byte {
	if variant%2 == 0 {
		return protocol.AppendString(dst, body)
	}
	dst = append(dst, '"')
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
