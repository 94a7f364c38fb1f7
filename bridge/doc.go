// Package bridge is conclave inside Claude Code: an MCP server on stdio
// (mark3labs/mcp-go) that keeps one reconnecting link per registered
// conclave server, turns inbound channel messages and whispers into
// notifications/claude/channel pushes, and gives the agent tools to join,
// read, reply and administer. SPEC.md §6 is its contract.
//
// # Entry points
//
// [New] checks the [Options] (machine key, config.toml, the --server
// subset, --as, --join) and builds a [Bridge]; [Bridge.Serve] speaks MCP
// on the given stdin/stdout until stdin ends or ctx is cancelled. Only one
// Bridge may Serve per process: mcp-go's stdio session is a package-level
// singleton.
//
// # What the model sees
//
// Each inbound message becomes one notifications/claude/channel with
// string-valued meta server, channel (channel messages only), from and
// kind ("channel" or "whisper"), and content = an untrusted-data preamble,
// the wording of the scope's permission level, a blank line and the body
// exactly as sent. Claude Code renders it as
// <channel source="conclave" server=… channel=… from=… kind=…>content</channel>,
// escaping the attribute values and changing "</channel" in the content
// to "<\/channel", so nothing is escaped here. Link notices (kind "link"),
// server errors nobody waits for (kind "error") and unsubscribed/renamed
// notices use the same method. Joining is silent.
// catch_up shows the same body text; every line after a body's first is
// indented by four spaces, so no body passes for the next message's
// header. It has no structured content: Claude Code shows the model a
// tool's structuredContent in place of its text.
//
// # Permission requests
//
// Claude Code's notifications/claude/channel/permission_request is shown
// to the model not at all, and no tool answers it. The bridge forwards it
// as a permission_request frame to the server of every link (the
// bridge's session declares hello.role "bridge"), where only a person's
// session on one of the user's approver machines may answer. The verdict
// comes back as a permission_verdict frame and goes to Claude Code as
// notifications/claude/channel/permission {request_id, behavior}, once. A
// request stays pending in the bridge for 5 minutes and is re-sent after
// every reconnect; a server that refuses it (no approver machines) is
// logged on stderr, and Claude Code's terminal prompt remains the answer.
//
// Codex's PermissionRequest hook reaches the bridge through the hook
// socket (`conclave hook codex`) and goes the same way, under a request id
// the bridge makes; the verdict is the hook's reply instead of a
// notification. The hook waits as long as it said it would (WaitMs);
// when every link's server refused the request, or the wait ends, it
// gets no decision and Codex asks in its own way.
//
// # Protocol era
//
// Claude Code 2.1.3xx opens with server/discover at MCP 2026-07-28 and,
// if the answer lists that revision, stays in the "modern" era, where it
// drops notifications/claude/channel. The bridge's discover answer lists
// only the revisions before 2026-07-28 (mcp-go's
// server.WithSupportedProtocolVersions, set through the stdio context),
// so Claude Code falls back to initialize, the era where pushes are
// delivered; older clients start with initialize anyway. A client that
// goes on with modern requests regardless is still served (every tool
// works), the discover answer's instructions tell it that nothing will be
// pushed, and the bridge logs one warning on stderr at its first modern
// request other than server/discover.
//
// # Delivery: push or hooks
//
// [Options.Delivery] is chosen per project (`conclave agent setup` writes
// `--delivery hooks`): the bridge cannot see whether Claude Code shows its
// pushes. With DeliveryPush it declares the claude/channel capability and
// sends notifications/claude/channel. With DeliveryHooks it declares no
// channel capability and keeps what it would push in an inbox (inbox.go):
// per session, bounded in bytes (the oldest unread entries make room and
// are counted in the next delivery), deduplicated by (server, scope, seq).
// Each entry is rendered on arrival exactly as Claude Code renders a push
// (element.go): attribute values entity-escaped, "</channel" in the
// content neutralized. The tools read_inbox, peek_inbox and wait_inbox
// read it; inbox_hook is what an mcp_tool hook calls, and answers only
// with hook JSON, marking entries read as it hands them out. Mute drops a
// message before either path; levels frame both alike. The inbox's
// add/peek/take/takeIf/wait are the API a local hook endpoint for other
// runtimes can reuse.
//
// # Ordering and delivery
//
// Every notification goes through one outbox: an unbounded FIFO drained
// by one goroutine that starts half a second after the client's
// notifications/initialized and retries while mcp-go's 100-slot queue is
// full, so nothing is dropped and each link's deliveries keep the order
// the server sent them in. tools/list_changed goes through it too.
//
// # Links
//
// Each selected server gets a link: the bridge's policy over a
// [control.Session], which owns the connection. The session dials with
// the link's dial function (the current session handle, the pinned
// server id, a claim of the server id: a second URL for the same server
// is disabled), re-joins every --join channel (in flag order) and every
// joined channel on each connection, follows renamed and unsubscribed
// notices, keeps each channel's catch_up watermark, queues what the
// server sends (bounded) and, when the connection ends, backs off
// (200 ms doubling to 30 s, jittered, reset only after 30 s of uptime)
// and dials again. The link turns the session's events into notices,
// deliveries by level, the flapping breaker and permission forwarding;
// it never catches up by itself (the Reconnected notice asks the agent
// to call catch_up). Every dial sends the process's instance id (control) and, for a
// defaulted handle, session_defaulted: the server gives a second process
// in the same directory dir-2, dir-3, … (the link tells its session once,
// handleclaim.go), lets this process take back its own half-open session,
// and refuses an explicit --as that another process holds (the link says
// so once and keeps retrying). Against a server that only supersedes,
// three drops in a row within 30 s of connecting trip the flapping
// breaker: a defaulted handle renames itself (dir-2, dir-3, …), an
// explicit --as is diagnosed once and then kept quiet.
//
// # Choices where SPEC.md and behaviour.md are silent
//
//   - Same-server detection: a link claims the server id from the
//     challenge (control checks it equals x-conclave-server-id) through
//     control.Options.CheckServerID, before anything is signed, so a
//     second URL for the same server is disabled before logging in there
//     could supersede the canonical link's session. Registrations pinned
//     to the same server_id are caught before any dial.
//   - Tool calls are correlated by request id (control), not by a FIFO.
//   - catch_up keeps a per-channel watermark (a seq). Live deliveries
//     advance it only while nothing can have been missed: an outage, or a
//     catch_up that has not reached the end, freezes it until a catch_up
//     reaches the end. Without a watermark catch_up reads the whole
//     retained window. Multi-line bodies are indented in its result so a
//     body cannot forge a line of its own.
//   - The emit budget counts per server and channel, and per server and
//     whisper target, over a sliding minute. Only messages the server
//     accepted count; a call refused by the budget sends nothing.
//   - unsubscribed and renamed notices use kind "unsubscribed" and
//     "renamed" with the channel in meta; a failed --join or re-join is a
//     kind "error" notice. A renamed channel keeps its permission level.
//   - An id-less error frame with code unauthorized is the server dropping
//     the session: its reason goes into the Disconnected notice rather
//     than a notice of its own.
//   - A call to a link that will not dial again within 10 s fails at
//     once; otherwise it waits up to 10 s for the link.
//   - A tool hidden by the filter is still callable (mcp-go enforces the
//     filter on tools/call too; [Bridge] passes a single-tool call
//     through), so refusals are always isError results.
//
// # Concurrency
//
// Tool calls run on mcp-go's worker goroutines and talk to a link's
// current [control.Conn] directly (replies are matched by id). Locks: the
// tools mutex of [Bridge] may be held while taking a link's, its
// session's or the policy's mutex; those three are never held together.
package bridge
