package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/conclave/conclave/atomicfile"
	"github.com/conclave/conclave/regfile"

	"golang.org/x/crypto/ssh"
)

// File names inside the config dir.
const (
	// KeyFile holds the machine key, an OpenSSH private key file.
	KeyFile = "id_ed25519"
	// PublicKeyFile holds the machine's public key as an authorized_keys line.
	PublicKeyFile = KeyFile + ".pub"
	// LegacyKeyFile is the Rust version's key file: an unpadded base64url
	// 32-byte Ed25519 seed.
	LegacyKeyFile = "key"
)

// LoadKey reads the machine key from dir/id_ed25519.
//
// If that file is missing but the Rust version's dir/key is there, LoadKey
// converts it into dir/id_ed25519 (and dir/id_ed25519.pub) and returns a
// notice saying so, for the caller to show once; the notice is "" otherwise.
// The old file is left in place.
//
// Errors wrap [ErrNoKey] when there is no key at all (the text tells the
// user to run `conclave key`), and [ErrKeyEncrypted] for a key protected by
// a passphrase. A key file readable by group or others is chmodded to 0600.
func LoadKey(dir string) (key ed25519.PrivateKey, notice string, err error) {
	key, err = readKey(dir)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, "", err
	}
	key, imported, err := importLegacyKey(dir)
	switch {
	case err != nil:
		return nil, "", err
	case imported:
		notice = fmt.Sprintf("imported the key from %s into %s",
			filepath.Join(dir, LegacyKeyFile), filepath.Join(dir, KeyFile))
		return key, notice, nil
	case key != nil:
		// Another process created or imported the key meanwhile.
		return key, "", nil
	}
	return nil, "", fmt.Errorf("%w in %s: run `conclave key` to create one (or `conclave register`, which creates it too)", ErrNoKey, dir)
}

// LoadOrCreateKey loads the machine key like [LoadKey] and, if there is none,
// generates one and writes it to dir/id_ed25519 (mode 0600, creating dir
// with mode 0700) with the comment conclave@host, and its public half to
// dir/id_ed25519.pub. An empty host means [DefaultMachineName]. created
// reports whether a new key was made. An existing key is never overwritten,
// even by a concurrent process: the loser of that race loads the winner's
// key.
func LoadOrCreateKey(dir, host string) (key ed25519.PrivateKey, created bool, notice string, err error) {
	key, notice, err = LoadKey(dir)
	if !errors.Is(err, ErrNoKey) {
		return key, false, notice, err
	}
	_, key, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, "", fmt.Errorf("generate machine key: %w", err)
	}
	if host == "" {
		host = DefaultMachineName()
	}
	err = writeKey(dir, key, "conclave@"+host)
	if errors.Is(err, fs.ErrExist) {
		key, err = readKey(dir)
		return key, false, "", err
	}
	if err != nil {
		return nil, false, "", err
	}
	return key, true, "", nil
}

// maxKeyFile caps what is read of a key file: an OpenSSH Ed25519 key is
// about 400 bytes, and a path that never ends (a symlink to /dev/zero)
// must not be read until memory runs out.
const maxKeyFile = 64 << 10

// readKey reads and parses dir/id_ed25519. A missing file gives an error
// wrapping fs.ErrNotExist.
func readKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, KeyFile)
	data, err := regfile.Read(path, maxKeyFile)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("read machine key: %w", err)
	}
	tightenMode(path)
	key, err := parseKey(data)
	if err != nil {
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			return nil, fmt.Errorf("%w: %s; conclave needs a key without one (remove the passphrase with `ssh-keygen -p -f %s`)",
				ErrKeyEncrypted, path, path)
		}
		return nil, fmt.Errorf("read machine key %s: %w", path, err)
	}
	return key, nil
}

func parseKey(data []byte) (ed25519.PrivateKey, error) {
	raw, err := ssh.ParseRawPrivateKey(data)
	if err != nil {
		return nil, err
	}
	var key ed25519.PrivateKey
	switch k := raw.(type) {
	case *ed25519.PrivateKey: // what x/crypto/ssh returns
		key = *k
	case ed25519.PrivateKey:
		key = k
	default:
		return nil, fmt.Errorf("not an Ed25519 key (%T); conclave uses ssh-ed25519", raw)
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("malformed Ed25519 key")
	}
	return key, nil
}

// writeKey creates dir/id_ed25519 without replacing an existing one (the
// error then wraps fs.ErrExist), and then writes dir/id_ed25519.pub.
func writeKey(dir string, key ed25519.PrivateKey, comment string) error {
	block, err := ssh.MarshalPrivateKey(key, comment)
	if err != nil {
		return fmt.Errorf("encode machine key: %w", err)
	}
	if err := ensureDir(dir); err != nil {
		return fmt.Errorf("create config dir: %w", err)
	}
	if err := atomicfile.WriteNew(filepath.Join(dir, KeyFile), pem.EncodeToMemory(block), 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		return fmt.Errorf("write machine key: %w", err)
	}
	pub := AuthorizedKey(key.Public().(ed25519.PublicKey), comment) + "\n"
	if err := atomicfile.WriteFile(filepath.Join(dir, PublicKeyFile), []byte(pub), 0o644); err != nil {
		return fmt.Errorf("write public key: %w", err)
	}
	return nil
}

// importLegacyKey converts the Rust version's dir/key into dir/id_ed25519.
// It returns a nil key and no error if there is no dir/key; imported is
// false, with the key read back, if id_ed25519 appeared meanwhile.
func importLegacyKey(dir string) (key ed25519.PrivateKey, imported bool, err error) {
	path := filepath.Join(dir, LegacyKeyFile)
	data, err := regfile.Read(path, maxKeyFile)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("read old key file: %w", err)
	}
	tightenMode(path)
	s := strings.TrimRight(strings.TrimSpace(string(data)), "=")
	seed, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, false, fmt.Errorf("import %s: keyfile does not contain a 32-byte seed", path)
	}
	key = ed25519.NewKeyFromSeed(seed)
	err = writeKey(dir, key, "conclave@"+DefaultMachineName())
	if errors.Is(err, fs.ErrExist) {
		key, err = readKey(dir)
		return key, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("import %s: %w", path, err)
	}
	return key, true, nil
}

// tightenMode chmods a secret file to 0600 if group or others may read it,
// as the Rust version did. It is best effort: a file we cannot chmod (not
// ours, a read-only file system) is still used.
func tightenMode(path string) {
	if runtime.GOOS == "windows" {
		return
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		_ = os.Chmod(path, 0o600)
	}
}
