// Package timespec owns the two grammars in which a user writes time, so
// that every flag and tool argument reads them alike:
//
//   - a duration ([ParseDuration]): Go's syntax plus the units d (24h)
//     and w (7d), combinable and optionally spaced: 90s, 36h, 1h30m,
//     1d12h, 2w, "1d 12h". A bare number is refused with a hint ("90
//     what? write 90s or 90m"); so is a sign.
//   - a point in time ([ParseTime]): RFC 3339 (2026-11-24T09:00:00Z), a
//     date (2026-11-24, midnight UTC), or a duration meaning that long ago.
//
// History retention and invite expiry take durations; --since, --until,
// --at and catch_up's since take points in time. The functions are pure
// and safe for concurrent use.
package timespec
