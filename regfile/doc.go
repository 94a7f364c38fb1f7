// Package regfile reads the files a user points conclave at — the machine
// key, config.toml, a coding agent's settings, a backup archive — so that
// no path can make conclave read forever or block: the file must be a
// regular file after following symlinks (so NixOS and Kubernetes secrets,
// which are symlinks to regular files, work, and /dev/zero, a FIFO or a
// directory do not), and [Read] never reads more than its cap.
//
// Errors name the path and the rule: "/p/id_ed25519: not a regular file
// (it is a device)" wraps [ErrNotRegular], "/p/config.toml: larger than
// 1 MiB" wraps [ErrTooLarge]; failures of the file system are returned as
// the os package gives them (a missing file wraps fs.ErrNotExist).
package regfile
