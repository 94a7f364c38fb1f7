package protocol

import (
	"crypto/ed25519"
	"encoding/binary"
)

// AuthDomain prefixes every signed authentication message.
const AuthDomain = "conclave-auth-v1"

// NonceSize is the length of a challenge nonce in bytes.
const NonceSize = 32

// AuthMessage returns the bytes a client signs to answer a challenge:
//
//	"conclave-auth-v1" 0x00
//	u32be(len(serverID)) serverID
//	u32be(len(nonce))    nonce
//	u32be(len(session))  session
//
// Lengths are big-endian uint32. serverID is the string from the challenge
// (and the x-conclave-server-id header), nonce the decoded nonce bytes,
// session the handle sent in hello.
func AuthMessage(serverID string, nonce []byte, session string) []byte {
	b := make([]byte, 0, len(AuthDomain)+1+12+len(serverID)+len(nonce)+len(session))
	b = append(b, AuthDomain...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(len(serverID)))
	b = append(b, serverID...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(nonce)))
	b = append(b, nonce...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(session)))
	b = append(b, session...)
	return b
}

// SignAuth signs the authentication message with key.
func SignAuth(key ed25519.PrivateKey, serverID string, nonce []byte, session string) []byte {
	return ed25519.Sign(key, AuthMessage(serverID, nonce, session))
}

// VerifyAuth checks sig against pub for the given challenge.
func VerifyAuth(pub ed25519.PublicKey, serverID string, nonce []byte, session string, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(pub, AuthMessage(serverID, nonce, session), sig)
}
