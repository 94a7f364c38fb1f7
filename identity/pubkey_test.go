package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestAuthorizedKeyAndFingerprintMatchSSH(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	spk, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(spk)), "\n")
	if got := AuthorizedKey(pub, ""); got != want {
		t.Errorf("AuthorizedKey(pub, \"\") = %q, want %q", got, want)
	}
	if got := AuthorizedKey(pub, "conclave@wa"); got != want+" conclave@wa" {
		t.Errorf("AuthorizedKey(pub, comment) = %q, want %q", got, want+" conclave@wa")
	}
	if got := AuthorizedKey(pub, "a\nb\tc "); got != want+" a b c" {
		t.Errorf("AuthorizedKey with control characters = %q, want %q", got, want+" a b c")
	}
	if !strings.HasPrefix(want, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5") {
		t.Errorf("unexpected authorized key %q", want)
	}
	if got, want := Fingerprint(pub), ssh.FingerprintSHA256(spk); got != want {
		t.Errorf("Fingerprint = %q, want %q", got, want)
	}
}

func TestParsePublicKey(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	line := AuthorizedKey(pub, "conclave@wa")
	field := strings.Fields(line)[1]

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub, err := ssh.NewPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaLine := string(ssh.MarshalAuthorizedKey(rsaPub))

	tests := []struct {
		name    string
		in      string
		wantErr string // "" means success with pub
	}{
		{name: "full line", in: line},
		{name: "line without comment", in: AuthorizedKey(pub, "")},
		{name: "line with surrounding whitespace", in: "  " + line + "\n"},
		{name: "line with options", in: `from="10.0.0.1" ` + line},
		{name: "base64 field", in: field},
		{name: "base64 field with newline", in: field + "\n"},
		{name: "raw base64url (Rust)", in: base64.RawURLEncoding.EncodeToString(pub)},
		{name: "empty", in: "  ", wantErr: "invalid public key: empty"},
		{name: "garbage", in: "hello", wantErr: "invalid public key"},
		{name: "garbage line", in: "ssh-ed25519 !!!", wantErr: "invalid public key"},
		{name: "truncated field", in: field[:40], wantErr: "invalid public key"},
		{name: "raw base64url too short", in: base64.RawURLEncoding.EncodeToString(pub[:31]), wantErr: "invalid public key"},
		{name: "rsa line", in: rsaLine, wantErr: "invalid public key: ssh-rsa keys are not supported"},
		{name: "rsa field", in: strings.Fields(rsaLine)[1], wantErr: "invalid public key: ssh-rsa keys are not supported"},
		{name: "two lines", in: line + "\n" + line, wantErr: "invalid public key: more than one key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePublicKey(tc.in)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("got error %v, want %x", err, pub)
				}
				if !got.Equal(pub) {
					t.Errorf("got %x, want %x", got, pub)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Errorf("got (%x, %v), want an error starting %q", got, err, tc.wantErr)
			}
		})
	}
}

func FuzzParsePublicKey(f *testing.F) {
	pub := ed25519.PublicKey(make([]byte, ed25519.PublicKeySize))
	f.Add(AuthorizedKey(pub, "conclave@wa"))
	f.Add(strings.Fields(AuthorizedKey(pub, ""))[1])
	f.Add(base64.RawURLEncoding.EncodeToString(pub))
	f.Add("ssh-rsa AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParsePublicKey(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "invalid public key: ") {
				t.Errorf("error %q lacks the invalid public key prefix", err)
			}
			return
		}
		if len(got) != ed25519.PublicKeySize {
			t.Fatalf("accepted a %d-byte key", len(got))
		}
		again, err := ParsePublicKey(AuthorizedKey(got, "c"))
		if err != nil || !again.Equal(got) {
			t.Errorf("round trip through AuthorizedKey: %x, %v", again, err)
		}
	})
}
