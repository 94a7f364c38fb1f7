package protocol

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// protocolDoc is the protocol reference, relative to this package.
const protocolDoc = "../docs/PROTOCOL.md"

// exampleInfo is the info string that marks a fenced block of
// docs/PROTOCOL.md as one example frame.
const exampleInfo = "json frame"

// docExample is one ```json frame block of the protocol reference.
type docExample struct {
	line int    // 1-based line of the opening fence
	text string // the block's contents
}

func (ex docExample) String() string { return fmt.Sprintf("%s:%d", protocolDoc, ex.line) }

// readProtocolDoc returns the protocol reference, its example blocks and
// the problems that would silently drop examples: a fence whose info string
// looks like a misspelt example marker, and an unterminated fence.
func readProtocolDoc(t *testing.T) (doc string, examples []docExample, problems []string) {
	t.Helper()
	b, err := os.ReadFile(protocolDoc)
	if err != nil {
		t.Fatalf("read the protocol reference: %v", err)
	}
	var (
		inFence bool
		isFrame bool
		start   int
		body    strings.Builder
	)
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if !inFence {
			if !strings.HasPrefix(trimmed, "```") {
				continue
			}
			info := strings.TrimSpace(strings.TrimPrefix(trimmed, "```"))
			inFence, isFrame, start = true, info == exampleInfo, n
			body.Reset()
			if !isFrame && strings.HasPrefix(info, "json") && strings.Contains(info, "frame") {
				problems = append(problems, fmt.Sprintf("%s:%d: fence info string %q: example blocks must be marked exactly %q", protocolDoc, n, info, exampleInfo))
			}
			continue
		}
		if trimmed == "```" {
			if isFrame {
				examples = append(examples, docExample{line: start, text: body.String()})
			}
			inFence = false
			continue
		}
		if isFrame {
			body.WriteString(line)
			body.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read the protocol reference: %v", err)
	}
	if inFence {
		problems = append(problems, fmt.Sprintf("%s:%d: fenced block is never closed", protocolDoc, start))
	}
	return string(b), examples, problems
}

// decodeExample decodes one example as the server would, and again
// strictly, so that a misspelt field name (which Decode ignores) fails.
func decodeExample(ex docExample) (*Frame, error) {
	f, err := Decode([]byte(ex.text))
	if err != nil {
		return nil, fmt.Errorf("Decode: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(ex.text))
	dec.DisallowUnknownFields()
	var strict Frame
	if err := dec.Decode(&strict); err != nil {
		return nil, fmt.Errorf("field not in protocol.Frame: %v", err)
	}
	return f, nil
}

// validateExample applies the protocol's validation to an example:
// requests, the clients' handshake frames, server replies and deliveries
// (channel_msg and whisper without an id, with from and ts_ms) must all be
// valid.
func validateExample(f *Frame) error {
	return f.Validate()
}

func TestProtocolDocExamples(t *testing.T) {
	_, examples, problems := readProtocolDoc(t)
	for _, p := range problems {
		t.Error(p)
	}
	types := Types()
	slices.Sort(types)
	if len(examples) < len(types) {
		t.Errorf("%s has %d ```%s examples, fewer than the %d frame types", protocolDoc, len(examples), exampleInfo, len(types))
	}
	seen := make(map[string]int)
	for _, ex := range examples {
		f, err := decodeExample(ex)
		if err != nil {
			t.Errorf("%s: example does not decode: %v\n%s", ex, err, ex.text)
			continue
		}
		seen[f.Type]++
		if err := validateExample(f); err != nil {
			t.Errorf("%s: %s example is invalid: %v\n%s", ex, f.Type, err, ex.text)
		}
	}
	for _, typ := range types {
		if seen[typ] == 0 {
			t.Errorf("frame type %q has no ```%s example in %s", typ, exampleInfo, protocolDoc)
		}
	}
}

// TestProtocolDocCodesAndReasons keeps the error-code table and the
// list of drop reasons in step with the code.
func TestProtocolDocCodesAndReasons(t *testing.T) {
	doc, _, _ := readProtocolDoc(t)
	for _, c := range Codes {
		if !strings.Contains(doc, "| `"+string(c)+"` |") {
			t.Errorf("error code %q is missing from the error code table of %s", c, protocolDoc)
		}
	}
	for r := range reasons {
		if r == ReasonUnknownKey {
			continue // a refused login, documented with the handshake
		}
		if row := "| `" + string(r) + "` | `" + r.Text() + "` |"; !strings.Contains(doc, row) {
			t.Errorf("drop reason %q is not documented in %s: want a row starting %s", r, protocolDoc, row)
		}
	}
	if !strings.Contains(doc, `"`+AuthDomain+`"`) {
		t.Errorf("%s does not name the auth domain %q", protocolDoc, AuthDomain)
	}
	if !strings.Contains(doc, Subprotocol) {
		t.Errorf("%s does not name the subprotocol %q", protocolDoc, Subprotocol)
	}
}

// TestProtocolDocAuthVector checks the worked example of §4: the first
// hello, challenge and auth examples form one valid handshake for the key
// whose seed is the bytes 1..32, and the hex dump of the signed message is
// the one AuthMessage builds.
func TestProtocolDocAuthVector(t *testing.T) {
	doc, examples, _ := readProtocolDoc(t)
	first := make(map[string]*Frame)
	for _, ex := range examples {
		f, err := decodeExample(ex)
		if err != nil {
			continue // reported by TestProtocolDocExamples
		}
		if _, ok := first[f.Type]; !ok {
			first[f.Type] = f
		}
	}
	hello, ch, auth, reg := first[THello], first[TChallenge], first[TAuth], first[TRegister]
	if hello == nil || ch == nil || auth == nil || reg == nil {
		t.Fatal("the hello, challenge, register or auth example is missing")
	}
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	key := ed25519.NewKeyFromSeed(seed)
	pub := key.Public().(ed25519.PublicKey)
	if !bytes.Equal(auth.Pubkey, pub) || !bytes.Equal(reg.Pubkey, pub) {
		t.Errorf("the register and auth examples' pubkey is not the key of seed 01…20")
	}
	if !VerifyAuth(auth.Pubkey, ch.ServerID, ch.Nonce, hello.Session, auth.Signature) {
		t.Errorf("the auth example's signature does not verify for the challenge and hello examples")
	}
	if sig := SignAuth(key, ch.ServerID, ch.Nonce, hello.Session); !bytes.Equal(sig, auth.Signature) {
		t.Errorf("the auth example's signature differs from the deterministic Ed25519 signature")
	}
	msg := hex.EncodeToString(AuthMessage(ch.ServerID, ch.Nonce, hello.Session))
	if !strings.Contains(doc, msg) {
		t.Errorf("%s does not show the signed message of its worked example; it is\n%s", protocolDoc, msg)
	}
}
