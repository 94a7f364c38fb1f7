package identity_test

import (
	"crypto/ed25519"
	"fmt"

	"github.com/conclave/conclave/identity"
)

func ExampleConfig_Resolve() {
	cfg := identity.NewConfig() // default_permission = "notify"
	cfg.SetOverride("ws://127.0.0.1:4390", "ops", false, identity.Act)
	cfg.SetOverride("ws://127.0.0.1:4390", "", true, identity.Mute)

	fmt.Println(cfg.Resolve("ws://127.0.0.1:4390", "ops", false))
	fmt.Println(cfg.Resolve("ws://127.0.0.1:4390", "dev", false))
	fmt.Println(cfg.Resolve("ws://127.0.0.1:4390", "", true))
	fmt.Println(cfg.Resolve("ws://127.0.0.1:4390/", "ops", false)) // another URL
	// Output:
	// act
	// notify
	// mute
	// notify
}

func ExampleAuthorizedKey() {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	pub := key.Public().(ed25519.PublicKey)
	fmt.Println(identity.AuthorizedKey(pub, "conclave@wa"))
	fmt.Println(identity.Fingerprint(pub))
	// Output:
	// ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop conclave@wa
	// SHA256:tAXFyTXI8xtDaujAEcwJslAYc9/6FKcUkd2Lw0xDhPo
}
