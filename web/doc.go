// Package web holds the browser client of conclave, embedded in the binary
// and served by the server under /web/.
//
// The page is plain HTML, CSS and JavaScript written by hand: no build
// step, no third-party code, no request to any other origin. It is a
// client of the same WebSocket protocol as the CLI: the browser makes its
// own Ed25519 key with WebCrypto (non-extractable, kept in IndexedDB),
// enrolls it once through a one-time link (`conclave web`), and signs each
// login challenge with it. No cookie carries identity.
//
// [Handler] serves the files with a strict Content-Security-Policy
// (default-src 'self', no inline script, Trusted Types required, so the
// page cannot assign HTML strings to the DOM at all), gzip when the
// browser accepts it, and a strong ETag. It is safe for concurrent use.
package web
