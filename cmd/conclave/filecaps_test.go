package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestFilesTheCLIReads: a file the CLI reads from a path it is given or
// keeps (the key, config.toml, a TLS pair, a backup, an agent's settings)
// must be a regular file after symlinks and under a cap. A key that is a
// symlink to /dev/zero ends in one `error:` line (not an out-of-memory
// crash), a symlinked key (a NixOS or Kubernetes secret) works, and an
// oversized config.toml is refused by size.
func TestFilesTheCLIReads(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no /dev/zero")
	}
	tmp := t.TempDir()

	zero := filepath.Join(tmp, "zero")
	if err := os.MkdirAll(zero, 0o700); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(zero, "id_ed25519")
	if err := os.Symlink("/dev/zero", key); err != nil {
		t.Fatal(err)
	}
	fails(t, 1, "read machine key: "+key+": not a regular file (it is a device)", nil, "--config-dir", zero, "key")
	fails(t, 1, "not a regular file (it is a device)", nil, "--config-dir", zero, "register", "alice", "--server", "ws://127.0.0.1:1")

	// A mounted secret: id_ed25519 a symlink to a regular file elsewhere.
	store := filepath.Join(tmp, "store")
	pub := ok(t, nil, "--config-dir", store, "key")
	secret := filepath.Join(tmp, "secret")
	if err := os.MkdirAll(secret, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(store, "id_ed25519"), filepath.Join(secret, "id_ed25519")); err != nil {
		t.Fatal(err)
	}
	if got := ok(t, nil, "--config-dir", secret, "key"); got != pub {
		t.Errorf("key through a symlink = %q, want %q", got, pub)
	}

	// config.toml over its 1 MiB cap.
	big := filepath.Join(tmp, "big")
	writeConfig(t, big, "# "+strings.Repeat("x", 1<<20)+"\n")
	fails(t, 1, "read config file: "+filepath.Join(big, "config.toml")+": larger than 1 MiB", nil, "--config-dir", big, "server", "list")

	// A backup that is a device, and a TLS key that never ends.
	fails(t, 1, "open backup: /dev/zero: not a regular file (it is a device)", nil, "restore", "/dev/zero", "--data-dir", filepath.Join(tmp, "restored"))
	cert := filepath.Join(tmp, "cert.pem")
	if err := os.WriteFile(cert, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fails(t, 1, "load TLS certificate: /dev/zero: not a regular file (it is a device)", nil,
		"serve", "--ephemeral", "--bind", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", "/dev/zero")

	// An agent's settings file that is a device.
	project := filepath.Join(tmp, "project")
	if err := os.MkdirAll(project, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(project, ".mcp.json")); err != nil {
		t.Fatal(err)
	}
	fails(t, 1, "not a regular file (it is a device)", nil, "--config-dir", store, "agent", "setup", "claude-code", "--project", project)
}
