package identity

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"golang.org/x/crypto/ssh"
)

// sshWire is the SSH wire encoding of an Ed25519 public key: the string
// "ssh-ed25519" then the key, each with a 32-bit length. It is the base64
// field of an authorized_keys line and what SHA256 fingerprints hash.
// Unlike ssh.NewPublicKey it works for a key of any length, so that the
// formatting functions need no error result.
func sshWire(pub ed25519.PublicKey) []byte {
	return ssh.Marshal(struct {
		Name string
		Key  []byte
	}{ssh.KeyAlgoED25519, pub})
}

// AuthorizedKey formats pub as an authorized_keys line,
// "ssh-ed25519 AAAA… comment", without a trailing newline. An empty comment
// is left out; line breaks and other control characters in the comment are
// replaced by spaces so that the result stays one line.
func AuthorizedKey(pub ed25519.PublicKey, comment string) string {
	line := ssh.KeyAlgoED25519 + " " + base64.StdEncoding.EncodeToString(sshWire(pub))
	comment = strings.Join(strings.FieldsFunc(comment, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " ")
	if comment != "" {
		line += " " + comment
	}
	return line
}

// Fingerprint returns the SHA256 fingerprint of pub as ssh-keygen -l prints
// it: "SHA256:" and the unpadded base64 of the hash.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(sshWire(pub))
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// ParsePublicKey parses an Ed25519 public key given as
//
//   - an authorized_keys line, "ssh-ed25519 AAAA… comment", with or without
//     the comment (and with or without authorized_keys options);
//   - the base64 field of such a line alone, "AAAAC3NzaC1lZDI1NTE5…";
//   - the 43-character unpadded base64url raw key that the Rust version of
//     conclave printed.
//
// Surrounding whitespace is ignored. Any other key type is refused. Errors
// read "invalid public key: …".
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	pub, err := parsePublicKey(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("invalid public key: %w", err)
	}
	return pub, nil
}

func parsePublicKey(s string) (ed25519.PublicKey, error) {
	if s == "" {
		return nil, errors.New("empty")
	}
	if strings.ContainsFunc(s, unicode.IsSpace) {
		pk, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(s))
		if err != nil {
			return nil, errors.New("not an authorized_keys line (want `ssh-ed25519 AAAA… [comment]`)")
		}
		if len(strings.TrimSpace(string(rest))) > 0 {
			return nil, errors.New("more than one key")
		}
		return ed25519From(pk)
	}
	if len(s) == base64.RawURLEncoding.EncodedLen(ed25519.PublicKeySize) {
		if raw, err := base64.RawURLEncoding.Strict().DecodeString(s); err == nil {
			return ed25519.PublicKey(raw), nil
		}
	}
	blob, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("neither an ssh-ed25519 key nor its base64 field")
	}
	pk, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return nil, errors.New("not an SSH public key")
	}
	return ed25519From(pk)
}

// ed25519From returns the Ed25519 key in pk, refusing other key types,
// including certificates and security-key (sk-) variants.
func ed25519From(pk ssh.PublicKey) (ed25519.PublicKey, error) {
	if t := pk.Type(); t != ssh.KeyAlgoED25519 {
		return nil, fmt.Errorf("%s keys are not supported, conclave uses ssh-ed25519", t)
	}
	cpk, ok := pk.(ssh.CryptoPublicKey)
	if !ok {
		return nil, errors.New("not an ssh-ed25519 key")
	}
	pub, ok := cpk.CryptoPublicKey().(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("not an ssh-ed25519 key")
	}
	return pub, nil
}
