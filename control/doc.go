// Package control is conclave's client: an authenticated WebSocket
// connection to one server, used once by the CLI's one-shot verbs and kept
// open by tail, bench and the bridge.
//
// # Lifecycle
//
// [Dial] connects, upgrades to a WebSocket and runs the whole handshake
// (hello, challenge, optional register, auth, established) within
// [Options.DialTimeout]. Before it signs anything it checks the server id in
// the challenge against [Options.PinnedServerID], the id recorded in
// config.toml when this machine registered; a server presenting another id
// is refused with an error wrapping [identity.ErrServerIDMismatch], and no
// signature is sent.
//
// A [Conn] then carries requests: [Conn.Request] gives each a fresh "id"
// and waits for the one reply that echoes it. Frames the server sends
// unprompted (channel messages, whispers, unsubscribed and renamed notices,
// and the id-less error that announces the server dropping the session)
// arrive on [Conn.Events]. When the connection ends, for whatever reason,
// pending requests fail, Events is closed, [Conn.Done] is closed and
// [Conn.Err] says why. Always call [Conn.Close].
//
// # Concurrency
//
// All methods of a Conn may be called from several goroutines. Each Conn
// runs one reader goroutine, plus a keepalive goroutine when
// [Options.Keepalive] is set; Close stops both and waits for them.
//
// # Reconnecting
//
// A Conn does not reconnect by itself. [Subscribe] follows one channel
// across connections: it joins, reads the history up to the join's head
// (read_since with until_seq), then passes on the live deliveries, each
// message once and in seq order; when the connection ends for a reason
// worth retrying it dials again, joins again (following renames) and
// catches up after the last message it passed on. Its queue is bounded: a
// reader more than [SubscribeOptions.Buffer] events behind makes it drop
// the connection and resume from the history ([ErrOverflow]). tail is a
// printer of its events.
//
// A client that manages connections itself (the bridge) uses the same
// parts: [Reconnectable] tells a lost connection or a temporary drop
// ([protocol.Reason.Temporary]: the server shutting down or restarting, an
// idle timeout, a slow-consumer drop) from a refusal that will not go away
// (superseded, machine key revoked, user removed, a key or server id
// refused), and [Backoff] spaces the attempts 1 s, 2 s, 4 s, … up to 30 s,
// each stretched by up to a quarter at random. A new connection starts
// with no subscriptions: join again.
//
// # Errors and timeouts
//
// A refusal from the server is a [*protocol.Error] (use errors.As). Waits
// that run out of time return a [*TimeoutError], whose text starts with
// "timed out". A request whose connection ends first fails with an error
// wrapping [ErrNoResponse].
package control
