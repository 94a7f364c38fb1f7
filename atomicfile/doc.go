// Package atomicfile writes files so that a crash leaves either the old
// contents or the new, never a mix, and makes the change durable: the one
// place that knows the fsync dance (file, rename or link, directory).
//
// [WriteFile] replaces a file (config.toml, a data dir's server-id),
// [CreateNew] creates one that must not exist yet (the bytes a repair cuts,
// a restored segment), and [SyncDir] makes the entries made in a directory
// survive a power cut. The functions hold no state and are safe for
// concurrent use on different paths.
package atomicfile
