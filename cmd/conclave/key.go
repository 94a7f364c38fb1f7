package main

import (
	"crypto/ed25519"

	"github.com/conclave/conclave/identity"
)

// KeyCmd creates the machine key if there is none and prints its public
// half as one authorized_keys line.
type KeyCmd struct{}

// Run prints `ssh-ed25519 AAAA… conclave@<host>`; it never overwrites an
// existing key.
func (c *KeyCmd) Run(g *Globals) error {
	dir, err := g.ConfigDir()
	if err != nil {
		return err
	}
	key, created, notice, err := identity.LoadOrCreateKey(dir, "")
	if err != nil {
		return err
	}
	g.notice(notice)
	pub := key.Public().(ed25519.PublicKey)
	line := identity.AuthorizedKey(pub, "conclave@"+identity.DefaultMachineName())
	if g.JSON {
		return g.printJSON(struct {
			PublicKey   string `json:"public_key"`
			Fingerprint string `json:"fingerprint"`
			Created     bool   `json:"created"`
		}{line, identity.Fingerprint(pub), created})
	}
	g.printf("%s\n", line)
	return nil
}
