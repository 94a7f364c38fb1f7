// Package repair is the operator's offline way out of a damaged data dir,
// run by conclave repair while no server holds the dir: it takes the
// data dir's LOCK for as long as it runs, so a server cannot start
// meanwhile, and it refuses while a server holds it.
//
// [Open] takes the lock, [Repair.Inspect] finds what is damaged and
// returns a [Plan] without writing anything (the dry run), and
// [Repair.Apply] carries the plan out, moving everything it sets aside
// into a new folder DIR/quarantine/<time>/ so that no byte is lost:
//
//   - history/: each damaged record (or run of records one damaged frame
//     hides) is replaced in its segment by a gap record (see
//     [server.HistoryGapRecord]) so that every other message keeps its
//     seq; the damaged bytes go to quarantine/<time>/history/. After an
//     event-log cut, the messages of channels created by the events set
//     aside go too: a channel created later could otherwise get the same
//     id and show them.
//   - events/: the log is cut at its first damaged record. The event log
//     is the audit trail and never truncated by a server; this cut, by an
//     operator, is the one exception. Every event from the cut on is set
//     aside — the plan lists each one, type, actor and time, with the
//     security ones ([Security]) marked, since cutting them undoes them —
//     into quarantine/<time>/events/, and the snapshots that cover any of
//     them into quarantine/<time>/snapshots/.
//
// Everything is built on eventlog's scanners ([eventlog.Reader.ScanWith],
// [eventlog.RewritePlain]); this package knows no byte of the formats.
package repair
