// Package bench is conclave's load generator: the engine of
// `conclave bench`.
//
// [Run] starts a server — by default `conclave serve` as a child process
// on a temporary data dir with every limit off, so that the server's CPU
// time and memory, read from /proc, are its own — registers one identity
// per session outside every timed window, times the handshakes of the
// registered identities, subscribes the sessions evenly to the channels
// and then drives posts through it: round-robin over the channels, with
// at most Window messages published but not yet delivered to all their
// recipients, or at a fixed rate. Each body starts with the message's
// number and its send time (scheduled send time at a fixed rate, so that
// back-pressure counts as latency); the clients find only that in each
// delivery, so they stay cheap next to the server they share the cores
// with. After a warm-up it measures deliveries per second, the server's
// CPU, deliveries per server CPU-second and publish-to-delivery latency,
// stops the publishers, waits for the deliveries still owed, and counts
// the ones that never came as dropped.
//
// With Baseline the same clients drive a bare WebSocket broadcast server
// ([ServeBaseline]): no authentication, no decoding, no storage, the
// frames queued for a connection coalesced into one message per write.
// Its deliveries per CPU-second are the yardstick for the server's.
//
// Every phase is bounded in count and time; the bench listens on loopback
// only.
package bench
