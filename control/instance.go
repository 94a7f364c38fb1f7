package control

import (
	"crypto/rand"
	"encoding/base64"
	"sync"
)

// ProcessInstance returns this process's instance id, the default
// [Options.Instance]: 16 random bytes in unpadded base64url, made on the
// first call and the same for the life of the process.
var ProcessInstance = sync.OnceValue(func() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
})
