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
// Requests need not wait for each other: [Conn.Send] writes one and
// returns a [Call] to wait on, and a [Pipeline] keeps a bounded window of
// them in flight and hands back their replies in send order (posts sent
// so are stored in that order; replies are matched by id). The reader
// decodes what the server sends most — deliveries, acks, error replies —
// with [protocol.DecodeFromServer], without encoding/json.
//
// # Concurrency
//
// All methods of a Conn may be called from several goroutines. Each Conn
// runs one reader goroutine, plus a keepalive goroutine when
// [Options.Keepalive] is set; Close stops both and waits for them.
//
// # Reconnecting
//
// A Conn does not reconnect by itself. A [Session] is the one resumable
// connection to a server, for every client that stays connected: it
// dials (a caller's function, so the bridge can change its handle or pin
// between attempts), and when a connection ends for a reason worth
// retrying ([Reconnectable], or the caller's [SessionOptions.Retry]) it
// dials again after a [Backoff] delay — 1 s, 2 s, 4 s, … up to 30 s by
// default, each stretched by up to a quarter at random so that the
// clients a restarting server dropped do not come back in lockstep,
// starting again at the minimum after a connection that stayed up
// [SessionOptions.StableUptime]. On every new connection it joins its
// channels again, in order, holding the connection's frames until each
// join's outcome is reported (a refusal is an [EventJoinRefused], not an
// end). It follows renamed and unsubscribed notices, and keeps each
// channel's [Watermark]: the last seq seen, and whether nothing may have
// been missed since (no outage since it was last complete). Its queue is
// bounded, so the connection's reader never waits: a reader more than
// [SessionOptions.Buffer] frames behind makes it drop the connection and
// dial again ([ErrOverflow]). Everything comes out of [Session.Next], one
// [Event] at a time: the connection's frames and the session's own news
// (up, lost, dial failed, joined, join refused).
//
// [Subscribe] follows one channel on a Session and catches up: after
// every join it reads the history from its watermark up to the join's
// head (read_since with until_seq) before the live deliveries, so each
// message comes once and in seq order across reconnections; overflow
// drops the connection and resumes from the history. tail prints a
// Subscription's events; the bridge keeps its policy (notices, the
// flapping breaker, duplicate URLs, levels) over a Session per server.
//
// # Errors and timeouts
//
// A refusal from the server is a [*protocol.Error] (use errors.As). Waits
// that run out of time return a [*TimeoutError], whose text starts with
// "timed out". A request whose connection ends first fails with an error
// wrapping [ErrNoResponse].
package control
