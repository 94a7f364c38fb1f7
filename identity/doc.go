// Package identity holds what a conclave client keeps on its own machine:
// the machine key, the config dir, config.toml, and the permission levels
// with their resolution.
//
// Identity works the way SSH does. Every machine holds one Ed25519 key, and
// a user is the set of machines enrolled under a name on a server.
//
// # Files
//
// Everything lives in one directory, chosen by [ConfigDir]: the --config-dir
// flag, else $CONCLAVE_CONFIG_DIR, else os.UserConfigDir()/conclave. The
// directory is created with mode 0700.
//
//   - id_ed25519: the machine key as an OpenSSH private key file (PEM,
//     unencrypted, comment conclave@<host>, mode 0600), readable by
//     ssh-keygen. [LoadOrCreateKey] creates it if it is absent and never
//     overwrites it; [LoadKey] only reads it.
//   - id_ed25519.pub: the public key as an authorized_keys line, written
//     next to the private key when it is created or imported. Nothing reads
//     it; it is there for people and for ssh-keygen.
//   - key: the Rust version's key file, an unpadded base64url 32-byte seed.
//     When id_ed25519 is missing and key exists, [LoadKey] and
//     [LoadOrCreateKey] convert it into id_ed25519 once and return a notice
//     for the CLI to print. The old file is left where it is (so that the
//     Rust version keeps working with the same identity) and is never read
//     again once id_ed25519 exists.
//   - config.toml: registrations, permission levels and the emit budget; see
//     [Config]. [Config.Save] writes it atomically (atomicfile: a temporary file,
//     fsync, rename, fsync of the directory), so a reader sees the old file
//     or the new one, never a mix. There is no file locking: two CLI
//     processes that save at the same moment can lose one update.
//
// # Public keys
//
// [AuthorizedKey] formats a key the way conclave key prints it
// (ssh-ed25519 AAAA… conclave@host), [Fingerprint] the way ssh-keygen -l does
// (SHA256:…), and [ParsePublicKey] accepts an authorized_keys line, its base64
// field alone, or the Rust version's 43-character base64url key.
//
// # Permission levels
//
// A [Level] (mute < notify < converse < act) says how far an inbound message
// may drive an agent. It is local and never sent to a server. A level is
// resolved for a scope, (server URL, channel) or (server URL, whisper), by
// [Config.Resolve]: an override for exactly that scope, else the default.
// URLs are compared verbatim everywhere: ws://h/ and ws://h are different
// servers.
//
// # Server pinning
//
// Each registration records the id the server presented when it was made,
// the way known_hosts records a host key. [CheckPin] refuses a server whose
// id has changed, with [ErrServerIDMismatch].
//
// # Concurrency
//
// Functions that touch files may be called from several goroutines, but a
// [Config] value is plain data and is not safe for concurrent use.
package identity
