package identity

import "errors"

// Sentinel errors. Callers branch on them with errors.Is; the errors that
// carry them add the file or server they are about.
var (
	// ErrNoKey means the config dir holds no machine key.
	ErrNoKey = errors.New("identity: no machine key")

	// ErrKeyEncrypted means the key file is protected by a passphrase,
	// which conclave does not support.
	ErrKeyEncrypted = errors.New("identity: key is protected by a passphrase")

	// ErrServerIDMismatch means a server presented an id other than the
	// one recorded when this machine registered with it.
	ErrServerIDMismatch = errors.New("identity: server id mismatch")
)
