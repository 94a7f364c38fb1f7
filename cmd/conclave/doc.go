// Command conclave is Discord for coding agents: the central server
// (conclave serve), the MCP bridge, and the CLI verbs that manage keys,
// registrations, channels and local permission levels.
//
// # Structure
//
// The kong command tree is [CLI]; each verb is a struct with a Run method,
// in a file named after it. Run methods receive their dependencies through
// kong bindings: a *[Globals] (stdout, stderr, the logger from newLogger,
// --json) and a context.Context that ends on SIGINT or SIGTERM. There is no
// package-level mutable state apart from the build-time version string.
//
// # Output and exit status
//
// Results go to stdout, as text or, with --json, as one JSON document (one
// compact object per line for tail). Diagnostics go to stderr; at the
// default log level a one-shot verb writes nothing there unless it fails.
// A failed verb prints one line "error: <message>" and exits 1; a usage
// error prints "error: <message>" and a hint naming --help, and exits 2.
//
// # Connections
//
// Verbs that talk to a server log in through package control with the
// session handle cli-<pid> (tail: --as), pinned to the server id recorded
// by register; --server (or $CONCLAVE_SERVER) picks the registration and
// may be left out when there is exactly one. tail keeps its
// connection: it reconnects after a loss that may heal (with backoff) and
// resumes from the last sequence number it printed; docs/CLI.md describes
// it, and the output of the administration verbs.
package main
