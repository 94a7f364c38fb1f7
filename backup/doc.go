// Package backup takes consistent copies of a live conclave data dir and
// restores them, verified.
//
// # Create
//
// [Create] copies a data dir (SPEC.md §4: server-id, events/, history/,
// snapshots/) while a server keeps writing to it. It takes no lock, opens
// nothing under the dir for writing and never opens the logs through
// tidwall/wal: it parses the segment files itself, read-only. A running
// server only appends to the last segment of each log, so a copy of every
// segment, with the last one cut after its last complete record (checksum
// and hash chain verified), is a prefix of the log as the server
// acknowledges it: events 1..N for the N found, never a torn or reordered
// record. A torn tail left by a crash is cut the same way; damage anywhere
// else is an error, as it is for the server.
//
// The copy is made in two passes. The first reads every file, verifies it
// and fixes what the backup holds (the cut points, the snapshot, the
// SHA-256 of every file); it reads the history log first and the event log
// second, so every channel a copied message names has its creation event
// in the copy. The second pass re-reads exactly those bytes into the
// archive and compares their SHA-256: a change in between (a failed batch
// undone by the server, a history segment truncated away by age) makes
// Create start over, a few times at most. The snapshot is the newest one
// at or below N that decodes, links to the copied chain and loads.
//
// One race is out of reach without the server's help: records the server
// has written but whose batch fsync has not yet returned can be copied,
// and if that fsync then fails the server drops them while the backup
// keeps them (Create's re-read narrows the window to the time between the
// two passes). Such a backup is still a consistent, verified log.
//
// The archive is written to a temporary file beside the output, fsynced,
// then read back and verified in full before it is linked into place; an
// existing file is never replaced.
//
// # Archive format (version 1)
//
// A zstd stream holding a tar stream (USTAR) whose first entry is
// manifest.json (see [Manifest]), then server-id, the snapshot (if any),
// the event segments in order and the history segments in order, with
// the directory entries snapshots/, events/ and history/. Paths and
// file contents are exactly those of the data dir, so the unpacked tree
// is a data dir. Every regular file is listed in the manifest with its
// size and SHA-256, in archive order. A reader refuses an archive whose
// format_version is above [FormatVersion].
//
// # Restore
//
// [Restore] unpacks into an empty or missing directory. It unpacks into a
// temporary directory, verifies everything (checksums, the hash chain up
// to event_seq, the snapshot and the replay of the events after it, the
// history entries) and only then moves the files into place; on any
// failure the target is left as it was. The result is usable by
// `conclave serve --data-dir DIR` as it is, under the same server id.
//
// # Concurrency
//
// Create and Restore hold no shared state; any number may run at once on
// different targets. A data dir may be backed up by several Creates and a
// server at once.
package backup
