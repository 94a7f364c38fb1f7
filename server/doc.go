// Package server is conclave's central server: the HTTP and WebSocket
// endpoint, the handshake, live sessions and presence, channel fan-out,
// whispers, heartbeat reaping, and the single writer of a data dir.
//
// # Lifecycle
//
// [New] builds a server that answers /health with 503 and refuses
// WebSocket upgrades; [Server.Recover] opens the data dir (taking its LOCK),
// loads the newest usable snapshot, replays the event log after it and
// starts accepting sessions. [Server.Shutdown] closes every session with a
// going-away reason, writes a snapshot and releases the data dir.
//
// # State and the single writer
//
// Every change to durable state — registrations, machines, channels, ACLs,
// invites, bans — is a projections.Command submitted to one writer
// goroutine, commitCommands. It takes the commands that are waiting,
// decides and applies each against the in-memory projection (so every command sees the
// effects of those before it, even in the same batch), appends all their
// events with one fsync, and only then sends the replies and runs the
// effects on live sessions (unsubscribes, drops). If the append fails,
// every command of the batch fails and the projection is rebuilt from disk.
//
// # Sessions
//
// Each session has one reader goroutine, which handles its requests in
// order, and, while it has something to write, one writeLoop goroutine,
// which drains a bounded queue (the outbox) and coalesces queued frames
// into one WebSocket message, written through a timedConn that bounds each
// write by Config.WriteTimeout; writeLoop ends when the queue is empty and
// the next frame queued starts another, so an idle session holds only its
// reader. The connection's buffers are smaller than net/http's (connbuf.go).
// Channel posts take another path: they are numbered and fanned out at
// once, and history's persistPosts goroutine group-commits them to the
// message log and releases their acks once durable. Publishing never
// blocks: a session whose queue is full is dropped as a slow consumer.
//
// # Concurrency
//
// Lock order: Server.mu (the projection) before hub.mu (presence and
// subscriptions). Neither is held while writing to the network or disk.
package server
