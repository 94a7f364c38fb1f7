package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	if runtime.GOOS == "windows" {
		return
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("mode of %s = %v, want %v", path, got, want)
	}
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

func TestLoadOrCreateKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "conclave")

	if _, _, err := LoadKey(dir); !errors.Is(err, ErrNoKey) {
		t.Fatalf("LoadKey on an empty dir: got %v, want ErrNoKey", err)
	} else if !strings.Contains(err.Error(), "conclave key") {
		t.Errorf("ErrNoKey text %q does not mention `conclave key`", err)
	}

	key, created, notice, err := LoadOrCreateKey(dir, "wa")
	if err != nil {
		t.Fatal(err)
	}
	if !created || notice != "" {
		t.Errorf("first LoadOrCreateKey: created=%v notice=%q, want true and \"\"", created, notice)
	}
	checkMode(t, dir, 0o700)
	checkMode(t, filepath.Join(dir, KeyFile), 0o600)

	pubLine, err := os.ReadFile(filepath.Join(dir, PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(pubLine), AuthorizedKey(pubOf(key), "conclave@wa")+"\n"; got != want {
		t.Errorf("%s = %q, want %q", PublicKeyFile, got, want)
	}

	before, _ := os.ReadFile(filepath.Join(dir, KeyFile))
	again, created, _, err := LoadOrCreateKey(dir, "other")
	if err != nil {
		t.Fatal(err)
	}
	if created || !again.Equal(key) {
		t.Errorf("second LoadOrCreateKey: created=%v, same key=%v; want false, true", created, again.Equal(key))
	}
	after, _ := os.ReadFile(filepath.Join(dir, KeyFile))
	if !bytes.Equal(before, after) {
		t.Error("LoadOrCreateKey rewrote an existing key file")
	}

	loaded, notice, err := LoadKey(dir)
	if err != nil || notice != "" || !loaded.Equal(key) {
		t.Errorf("LoadKey = (same=%v, %q, %v), want the created key", loaded.Equal(key), notice, err)
	}

	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestLoadOrCreateKeyConcurrent(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	keys := make([]ed25519.PrivateKey, n)
	createdCount := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k, c, _, err := LoadOrCreateKey(dir, "h")
			if err != nil {
				t.Error(err)
			}
			keys[i], createdCount[i] = k, c
		})
	}
	wg.Wait()
	created := 0
	for i := range n {
		if createdCount[i] {
			created++
		}
		if !keys[i].Equal(keys[0]) {
			t.Errorf("goroutine %d got a different key", i)
		}
	}
	if created != 1 {
		t.Errorf("%d callers created a key, want 1", created)
	}
}

func TestKeyFileIsOpenSSH(t *testing.T) {
	dir := t.TempDir()
	key, _, _, err := LoadOrCreateKey(dir, "wa")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "OPENSSH PRIVATE KEY" {
		t.Fatalf("key file is not an OPENSSH PRIVATE KEY PEM block:\n%s", data)
	}
	raw, err := ssh.ParseRawPrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	pk, ok := raw.(*ed25519.PrivateKey)
	if !ok {
		t.Fatalf("ParseRawPrivateKey returned %T, want *ed25519.PrivateKey", raw)
	}
	if !pk.Equal(key) {
		t.Error("the key file holds a different key")
	}
	_, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(AuthorizedKey(pubOf(key), "conclave@wa")))
	if err != nil || comment != "conclave@wa" {
		t.Errorf("authorized key comment = %q, %v", comment, err)
	}
}

func TestKeyWithSSHKeygen(t *testing.T) {
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen not installed")
	}
	dir := t.TempDir()
	key, _, _, err := LoadOrCreateKey(dir, "wa")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("ssh-keygen -y reads our key", func(t *testing.T) {
		out, err := exec.Command(keygen, "-y", "-f", filepath.Join(dir, KeyFile)).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen -y: %v\n%s", err, out)
		}
		got := strings.Fields(string(out))
		want := strings.Fields(AuthorizedKey(pubOf(key), ""))
		if len(got) < 2 || got[0] != want[0] || got[1] != want[1] {
			t.Errorf("ssh-keygen -y = %q, want %q", got, want)
		}
	})

	t.Run("fingerprint matches ssh-keygen -l", func(t *testing.T) {
		out, err := exec.Command(keygen, "-l", "-f", filepath.Join(dir, PublicKeyFile)).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen -l: %v\n%s", err, out)
		}
		f := strings.Fields(string(out))
		if len(f) < 2 || f[1] != Fingerprint(pubOf(key)) {
			t.Errorf("ssh-keygen -l = %q, want fingerprint %s", out, Fingerprint(pubOf(key)))
		}
	})

	t.Run("we read a key ssh-keygen made", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, KeyFile)
		if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "x@y", "-f", path).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen -t ed25519: %v\n%s", err, out)
		}
		k, _, err := LoadKey(dir)
		if err != nil {
			t.Fatal(err)
		}
		pubLine, err := os.ReadFile(path + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		pub, err := ParsePublicKey(string(pubLine))
		if err != nil {
			t.Fatal(err)
		}
		if !pub.Equal(pubOf(k)) {
			t.Error("public key differs from ssh-keygen's .pub")
		}
	})

	t.Run("passphrase-protected key from ssh-keygen", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, KeyFile)
		if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "secret", "-f", path).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen -t ed25519: %v\n%s", err, out)
		}
		if _, _, err := LoadKey(dir); !errors.Is(err, ErrKeyEncrypted) {
			t.Errorf("got %v, want ErrKeyEncrypted", err)
		}
	})
}

func TestLoadKeyPassphrase(t *testing.T) {
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "c", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, KeyFile), pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = LoadKey(dir)
	if !errors.Is(err, ErrKeyEncrypted) {
		t.Fatalf("got %v, want ErrKeyEncrypted", err)
	}
	if !strings.Contains(err.Error(), "passphrase") {
		t.Errorf("error %q does not mention the passphrase", err)
	}
	// LoadOrCreateKey must not replace it either.
	if _, _, _, err := LoadOrCreateKey(dir, "h"); !errors.Is(err, ErrKeyEncrypted) {
		t.Errorf("LoadOrCreateKey: got %v, want ErrKeyEncrypted", err)
	}
}

func TestLoadKeyBadFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, KeyFile), []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := LoadKey(dir)
	if err == nil || errors.Is(err, ErrNoKey) {
		t.Fatalf("got %v, want a parse error", err)
	}
	if _, _, _, err := LoadOrCreateKey(dir, "h"); err == nil {
		t.Error("LoadOrCreateKey replaced an unreadable key file")
	}
}

func TestLoadKeyTightensMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix modes")
	}
	dir := t.TempDir()
	if _, _, _, err := LoadOrCreateKey(dir, "h"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, KeyFile)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadKey(dir); err != nil {
		t.Fatal(err)
	}
	checkMode(t, path, 0o600)
}

func TestImportLegacyKey(t *testing.T) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		t.Fatal(err)
	}
	want := ed25519.NewKeyFromSeed(seed)

	for _, tc := range []struct {
		name string
		load func(dir string) (ed25519.PrivateKey, string, error)
	}{
		{"LoadKey", LoadKey},
		{"LoadOrCreateKey", func(dir string) (ed25519.PrivateKey, string, error) {
			k, created, notice, err := LoadOrCreateKey(dir, "h")
			if created {
				t.Error("LoadOrCreateKey created a key instead of importing one")
			}
			return k, notice, err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			legacy := filepath.Join(dir, LegacyKeyFile)
			// As the Rust version wrote it, plus some whitespace.
			if err := os.WriteFile(legacy, []byte(" "+base64.RawURLEncoding.EncodeToString(seed)+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			key, notice, err := tc.load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !key.Equal(want) {
				t.Error("imported key differs from the seed's key")
			}
			if !strings.Contains(notice, "imported the key from "+legacy) {
				t.Errorf("notice = %q, want it to say the key was imported from %s", notice, legacy)
			}
			checkMode(t, filepath.Join(dir, KeyFile), 0o600)
			checkMode(t, legacy, 0o600)
			if _, err := os.Stat(legacy); err != nil {
				t.Errorf("old key file: %v, want it left in place", err)
			}
			pubLine, err := os.ReadFile(filepath.Join(dir, PublicKeyFile))
			if err != nil {
				t.Fatal(err)
			}
			if pub, err := ParsePublicKey(string(pubLine)); err != nil || !pub.Equal(pubOf(want)) {
				t.Errorf("%s holds %q (%v), want the imported key", PublicKeyFile, pubLine, err)
			}

			// Only once.
			key, notice, err = LoadKey(dir)
			if err != nil || notice != "" || !key.Equal(want) {
				t.Errorf("second load = (same=%v, %q, %v), want the same key and no notice", key.Equal(want), notice, err)
			}
		})
	}
}

func TestImportLegacyKeyOnlyWithoutNewKey(t *testing.T) {
	dir := t.TempDir()
	key, _, _, err := LoadOrCreateKey(dir, "h")
	if err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, ed25519.SeedSize)
	if err := os.WriteFile(filepath.Join(dir, LegacyKeyFile), []byte(base64.RawURLEncoding.EncodeToString(seed)), 0o600); err != nil {
		t.Fatal(err)
	}
	got, notice, err := LoadKey(dir)
	if err != nil || notice != "" || !got.Equal(key) {
		t.Errorf("LoadKey = (same=%v, %q, %v), want id_ed25519's key, no notice", got.Equal(key), notice, err)
	}
}

func TestImportLegacyKeyBadSeed(t *testing.T) {
	for _, content := range []string{"", "short", base64.RawURLEncoding.EncodeToString(make([]byte, 31)), "!!!!"} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, LegacyKeyFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadKey(dir)
		if err == nil || !strings.Contains(err.Error(), "32-byte seed") {
			t.Errorf("key file %q: got %v, want a 32-byte seed error", content, err)
		}
		if _, err := os.Stat(filepath.Join(dir, KeyFile)); err == nil {
			t.Errorf("key file %q: %s was written", content, KeyFile)
		}
	}
}

// TestLoadKeyFileThatNeverEnds: a key path that is a symlink to /dev/zero
// (or a FIFO, a directory) is refused with an error naming the path and
// what it is, instead of being read until memory runs out; a key larger
// than any key is refused by size; and a key that is a symlink to a
// regular file (NixOS, Kubernetes secrets) loads.
func TestLoadKeyFileThatNeverEnds(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no /dev/zero")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, KeyFile)
	if err := os.Symlink("/dev/zero", path); err != nil {
		t.Fatal(err)
	}
	want := "read machine key: " + path + ": not a regular file (it is a device)"
	if _, _, err := LoadKey(dir); err == nil || err.Error() != want {
		t.Fatalf("LoadKey with id_ed25519 -> /dev/zero: %v, want %q", err, want)
	}
	if _, _, _, err := LoadOrCreateKey(dir, "h"); err == nil || err.Error() != want {
		t.Fatalf("LoadOrCreateKey with id_ed25519 -> /dev/zero: %v, want %q", err, want)
	}

	big := t.TempDir()
	if err := os.WriteFile(filepath.Join(big, KeyFile), bytes.Repeat([]byte("A"), 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadKey(big); err == nil || !strings.HasSuffix(err.Error(), KeyFile+": larger than 64 KiB") {
		t.Fatalf("LoadKey of a 1 MiB key file: %v", err)
	}

	// A secret mounted as a symlink to a regular file.
	store, secret := t.TempDir(), t.TempDir()
	want0, _, _, err := LoadOrCreateKey(store, "h")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(store, KeyFile), filepath.Join(secret, KeyFile)); err != nil {
		t.Fatal(err)
	}
	got, _, err := LoadKey(secret)
	if err != nil || !got.Equal(want0) {
		t.Fatalf("LoadKey through a symlink: %v", err)
	}
}
