// Package atomicfile writes files so that a crash leaves either the old
// contents or the new, never a mix, and makes the change durable: the one
// place that knows the fsync dance (file, rename or link, directory).
//
// [WriteFile] (and [Write], for streamed contents) replaces a file
// (config.toml, a data dir's server-id, a snapshot), [WriteNew] creates one
// that must not exist yet, whole or not at all (a machine key), and
// [LinkNew] puts a finished temporary file in place the same way (a
// backup); [CreateNew] creates one in place (the bytes a repair cuts, a
// restored segment), and [SyncDir] makes the entries made in a directory
// survive a power cut. The functions hold no state and are safe for
// concurrent use on different paths.
package atomicfile
