// Package protocol defines conclave's wire protocol, version 1: the JSON
// frames exchanged over a WebSocket, their validation, the typed error
// codes, the rules for names and session paths, and the exact bytes a client
// signs to authenticate. It does no I/O.
//
// # Framing
//
// Every frame is a JSON object with a "type" field, carried in a WebSocket
// text message. A message holds one frame or several separated by "\n"
// (JSON Lines); clients send one frame per message, the server may coalesce
// queued deliveries. [DecodeMessage] splits a message, [Decode] reads one
// frame and [Frame.Validate] checks it against its type's rules.
//
// Requests carry an "id" chosen by the client; the one reply echoes it.
// Deliveries and notices sent unprompted carry no id.
//
// # Authentication
//
// After "hello", the server sends "challenge" with a random nonce and its
// server id. The client signs [AuthMessage] — a domain-separated,
// length-prefixed concatenation of the server id, the nonce and the session
// handle — with its Ed25519 machine key. A signature made for one server,
// nonce or session is useless for any other.
//
// The complete catalogue, with an example for every frame, is in
// docs/PROTOCOL.md.
package protocol
