package protocol

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
)

func TestAuthMessageLayout(t *testing.T) {
	got := AuthMessage("sid", []byte{1, 2}, "s")
	want := []byte("conclave-auth-v1\x00\x00\x00\x00\x03sid\x00\x00\x00\x02\x01\x02\x00\x00\x00\x01s")
	if !bytes.Equal(got, want) {
		t.Fatalf("AuthMessage = %q, want %q", got, want)
	}
}

func TestSignatureIsBoundToServerNonceAndSession(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	nonce := bytes.Repeat([]byte{7}, NonceSize)
	sig := SignAuth(priv, "server-a", nonce, "main")
	if !VerifyAuth(pub, "server-a", nonce, "main", sig) {
		t.Fatal("valid signature rejected")
	}
	other := bytes.Repeat([]byte{8}, NonceSize)
	cases := []struct {
		name     string
		serverID string
		nonce    []byte
		session  string
	}{
		{"other server", "server-b", nonce, "main"},
		{"other nonce", "server-a", other, "main"},
		{"other session", "server-a", nonce, "other"},
		// Length prefixes keep field boundaries: moving bytes between fields fails.
		{"shifted boundary", "server-", append([]byte("a"), nonce...), "main"},
	}
	for _, c := range cases {
		if VerifyAuth(pub, c.serverID, c.nonce, c.session, sig) {
			t.Errorf("%s: signature accepted", c.name)
		}
	}
	if VerifyAuth(pub[:31], "server-a", nonce, "main", sig) || VerifyAuth(pub, "server-a", nonce, "main", sig[:63]) {
		t.Error("short key or signature accepted")
	}
}
