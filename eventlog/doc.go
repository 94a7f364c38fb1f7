// Package eventlog is conclave's durable, append-only storage: the event
// log of admin changes ([Log]), a plain log of opaque payloads for channel
// history ([Plain]), a read-only [Reader] for audit and backup, and zstd
// snapshot files ([WriteSnapshot], [LoadNewestSnapshot]). It stores opaque
// records and knows nothing of users or channels.
//
// Both logs sit on github.com/tidwall/wal, which frames entries on disk but
// checks nothing: this package adds a checksum in every entry, repair of a
// torn tail, undo of a failed batch, directory fsyncs, and a mutex in
// front of the wal (its Read mutates shared state under a read lock).
//
// # On-disk layout
//
// A log is a directory of segment files, each named by the zero-padded
// 20-digit index of its first entry (00000000000000000001, ...). A segment
// is a sequence of frames, uvarint(len(payload)) followed by the payload
// (tidwall/wal's Binary format). A new segment starts when the current one
// reaches [Options.SegmentSize]. Files named <segment>.broken[.N] hold
// bytes cut off by a repair; *.START and *.END files belong to an
// interrupted wal truncation, which the next open completes.
//
// # Record format (version 1)
//
// Each event-log payload is one record; the wal index of its entry is its
// sequence number, starting at 1. Integers are big-endian:
//
//	version   u8        FormatVersion (1)
//	seq       u64       1-based, equal to the wal index
//	time_ms   i64       unix milliseconds
//	prev      [32]byte  SHA-256 of the previous record's encoding; zero for seq 1
//	actor     u16 length, then that many bytes
//	type      u16 length, then that many bytes
//	data      u32 length, then that many bytes
//	crc       u32       CRC-32C (Castagnoli) of every preceding byte
//
// A record's hash (Record.Hash) is the SHA-256 of its whole encoding, crc
// included; it is computed, not stored, and the next record's prev must
// equal it. This chain makes any change to an earlier record detectable.
// Every future version keeps the version byte first and the CRC-32C of the
// preceding bytes last, so a record is checksummed before it is parsed:
// damage reads as [ErrChecksum], and a version above [FormatVersion] (with a
// good checksum) is [ErrNewerFormat], which this binary refuses to read,
// repair or append after.
//
// A [Plain] payload is crc32c(data) as u32 followed by data.
//
// # Repair policy
//
// [Open] and [OpenPlain] scan the last segment before handing it to the
// wal. If it ends in an incomplete frame, a zero-filled region (which the
// wal would read as empty entries) or entries failing their checksum, and
// no valid entry follows, the segment is cut back to its last valid entry:
// a crash tore the last write. The cut bytes are kept in <segment>.broken,
// the segment and the directory are fsynced, and a warning reports the
// segment, seq and number of bytes cut. For the event log, "no valid entry
// follows" is checked at every byte offset, so a damaged length field in
// the middle is not mistaken for a torn tail.
//
// With [Options.KeepDamaged] (plain log only) a damaged entry in the
// middle of the last segment — a whole frame failing its checksum, valid
// entries after it — is left in place and reported instead of refused, so
// that a caller (the server's channel history) can read around it.
//
// Nothing else is repaired. Damage in any other segment, a bad record
// followed by good ones, a checksummed record with the wrong seq or prev,
// or a gap between segments is reported as an error wrapping [ErrCorrupt]
// (or [ErrChecksum], [ErrChain], [ErrNewerFormat]) inside a [*SegmentError]
// that names the segment file and seq. Open reads only the last segment
// and the last record; [Log.Replay] and [Reader.Scan] verify every record
// they pass: checksum, format, seq, the joins between segments and the
// hash chain.
//
// # Scanners
//
// One set of byte-level scanners reads both formats, for this package's
// readers and for callers that hold a segment's bytes themselves (backup
// copies a live log and reads archives): [ListSegments] and
// [ParseSegmentName] for a directory, [ScanEvents] (with a [Chain], the
// position of a scan) and [ScanPlain] for one segment's bytes,
// [DecodeSnapshot] for a snapshot file. A [TailRule] says what a bad end of
// the last segment means: an error, a write in progress, or a torn write
// that Open would cut. With [ScanOptions.OnDamage] a scan does not stop
// at damage: it reports each damaged entry, or run of entries hidden by an
// unreadable frame ([SegmentError.Last]), with its segment, seq (index)
// and byte offset, and reads on. [Reader.ScanWith] and [PlainReader.Scan]
// do this for a whole events or history directory.
//
// # Writes and failures
//
// [Log.Append] and [Plain.Append] write a batch with one wal WriteBatch:
// one write(2) and one fsync, plus an fsync of the directory when the batch
// started a new segment file. If the write or either fsync fails, the whole
// batch fails. Because the wal keeps a failed batch in memory and would
// misalign the next one, the log then closes the wal, removes from disk
// everything after the last good entry (keeping it in .broken files),
// reopens, and returns the error with its in-memory position unchanged. A
// failed fsync is never retried as if it had succeeded: the batch it
// covered is gone. If the reopen fails too, every call retries it first.
//
// # Concurrency
//
// [Log] and [Plain] are safe for concurrent use: one mutex per log guards
// the wal and the log's position, so reads, appends and truncation never
// overlap. [Log.Replay] and [Plain.Scan] hold it only while reading, not
// while calling back. [Reader] takes no lock and writes nothing; it may run
// beside a live writer, and treats a record still being written at the end
// of the last segment as the end of the log. Snapshot functions are
// stateless; only one WriteSnapshot may run per directory at a time.
//
// # Snapshots
//
// A snapshot file DIR/snap-<seq %020d>.zst is one zstd stream of
//
//	"CNSNAP1\n" | schema u32 | seq u64 | hash [32] | len u64 | payload | crc32c(payload) u32
//
// where seq and hash identify the last record the caller's state covers.
// [LoadNewestSnapshot] skips damaged or foreign-schema files, with a
// warning, for older ones; the caller then replays the log from seq with
// hash as prevHash, which checks the link between snapshot and log.
package eventlog
