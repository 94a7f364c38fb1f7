// Package datadir owns the layout of a conclave data dir: which files and
// directories it holds, its LOCK, its server id, and the two ways to open
// it. The server opens it for writing ([Open]: take the lock, create what
// is missing); audit and backup open it read-only ([OpenReadOnly]: check it
// is a data dir, write nothing, take no lock), so either can run beside a
// live server.
//
// # Layout
//
//	DIR/server-id     the id a server presents in x-conclave-server-id, one line
//	DIR/LOCK          flock(2)ed by the one server using DIR; holds "pid N on HOST"
//	DIR/events/       the event log (eventlog.Log)
//	DIR/history/      channel history (eventlog.Plain)
//	DIR/snapshots/    state snapshots (eventlog snapshot files)
//	DIR/quarantine/   what conclave repair set aside, a folder per run (never read by a server)
//
// A directory is a data dir when it holds a server-id file and an events/
// directory. The formats inside events/, history/ and snapshots/ belong to
// package eventlog; docs/DATADIR.md describes both.
//
// A [*Dir] is safe for concurrent use. Close releases the lock of a Dir
// opened for writing; a read-only Dir holds nothing.
package datadir
