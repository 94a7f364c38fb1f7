// The browser's machine identity and its connection to the server: the same
// protocol as the CLI (docs/PROTOCOL.md), signed with a WebCrypto Ed25519
// key that cannot be exported, kept in IndexedDB.

const DB = "conclave";
const STORE = "identity";
const RECORD = "machine";

function idb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function tx(mode, fn) {
  const db = await idb();
  try {
    return await new Promise((resolve, reject) => {
      const t = db.transaction(STORE, mode);
      const req = fn(t.objectStore(STORE));
      t.oncomplete = () => resolve(req?.result);
      t.onerror = () => reject(t.error);
      t.onabort = () => reject(t.error);
    });
  } finally {
    db.close();
  }
}

// loadIdentity returns the stored record: {privateKey, pubkey (Uint8Array),
// enrolled, serverID, path}, or undefined.
export function loadIdentity() {
  return tx("readonly", (s) => s.get(RECORD));
}

export function saveIdentity(rec) {
  return tx("readwrite", (s) => s.put(rec, RECORD));
}

export function forgetIdentity() {
  return tx("readwrite", (s) => s.delete(RECORD));
}

// newIdentity makes a key whose private half never leaves WebCrypto.
export async function newIdentity() {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  const pubkey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return { privateKey: pair.privateKey, pubkey, enrolled: false };
}

export function b64(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

export function unb64(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// authMessage is protocol.AuthMessage: "conclave-auth-v1" 0x00, then
// server id, nonce and session handle, each with a u32 big-endian length.
function authMessage(serverID, nonce, session) {
  const enc = new TextEncoder();
  const parts = [enc.encode("conclave-auth-v1"), new Uint8Array([0])];
  for (const f of [enc.encode(serverID), nonce, enc.encode(session)]) {
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, f.length);
    parts.push(len, f);
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// ProtocolError is a refusal from the server: code (protocol §8) and a
// message safe to show.
export class ProtocolError extends Error {
  constructor(code, message, reason) {
    super(message);
    this.code = code;
    this.reason = reason || ""; // a drop reason code (docs/PROTOCOL.md §5), if any
  }
}

// wsURL is the server's WebSocket address: the parent of this page's
// directory (the page is served at BASE/web/), in ws(s) form.
export function wsURL() {
  const u = new URL("../", location.href);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  u.hash = "";
  u.search = "";
  return u.href;
}

// pageInstance is this page's instance id, sent in every hello: a
// reconnection from the same page takes back its own session, even one
// the server still thinks is live (docs/PROTOCOL.md §5, Two sessions, one
// handle). Made on first use, once per page load.
let pageInstance = "";
function instance() {
  if (!pageInstance) {
    const a = new Uint8Array(16);
    crypto.getRandomValues(a);
    pageInstance = b64(a);
  }
  return pageInstance;
}

// Conn is one authenticated session. onFrame receives the frames the
// server sends unprompted; onClose(reason, code) is called once.
export class Conn {
  constructor({ onFrame, onClose }) {
    this.onFrame = onFrame;
    this.onClose = onClose;
    this.pending = new Map();
    this.nextID = 1;
    this.closed = false;
    this.lastError = null;
  }

  // open runs the handshake. With token, it enrolls ident's key through
  // the one-time link first. pinned is the server id seen at enrollment:
  // a server presenting another id is not signed for.
  open(ident, session, { token, pinned } = {}) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(wsURL(), "conclave.v1");
      this.ws = ws;
      let stage = "hello";
      const send = (f) => ws.send(JSON.stringify(f));
      ws.onopen = () => send({ type: "hello", version: 1, session, client: "conclave-web/1", instance: instance() });
      ws.onmessage = async (ev) => {
        for (const line of String(ev.data).split("\n")) {
          if (!line.trim()) continue;
          let f;
          try {
            f = JSON.parse(line);
          } catch {
            continue;
          }
          if (stage === "live") {
            this.dispatch(f);
            continue;
          }
          if (f.type === "error") {
            this.lastError = new ProtocolError(f.code, f.message, f.reason);
            continue; // the close follows
          }
          if (stage === "hello" && f.type === "challenge") {
            stage = "auth";
            if (pinned && f.server_id !== pinned) {
              this.lastError = new ProtocolError("pin", `this server presents id ${f.server_id}, but this browser was enrolled with ${pinned}: not signing in`);
              ws.close(1000);
              return;
            }
            this.serverID = f.server_id;
            const msg = authMessage(f.server_id, unb64(f.nonce), session);
            const sig = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, ident.privateKey, msg));
            if (token) send({ type: "enroll", token, pubkey: b64(ident.pubkey) });
            send({ type: "auth", pubkey: b64(ident.pubkey), signature: b64(sig) });
          } else if (stage === "auth" && f.type === "established") {
            stage = "live";
            this.path = f.path;
            this.admin = !!f.admin;
            resolve(f);
          }
        }
      };
      ws.onclose = (ev) => {
        const err = this.lastError || new ProtocolError("closed", ev.reason || "the connection closed");
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
        if (stage !== "live") {
          reject(err);
          return;
        }
        if (!this.closed) {
          this.closed = true;
          this.onClose(err);
        }
      };
    });
  }

  dispatch(f) {
    if (f.id && this.pending.has(f.id)) {
      const p = this.pending.get(f.id);
      this.pending.delete(f.id);
      if (f.type === "error") p.reject(new ProtocolError(f.code, f.message, f.reason));
      else p.resolve(f);
      return;
    }
    if (f.type === "error" && !f.id) this.lastError = new ProtocolError(f.code, f.message, f.reason);
    this.onFrame(f);
  }

  // request sends a frame and resolves with its reply (rejects on error).
  request(frame) {
    const id = String(this.nextID++);
    return new Promise((resolve, reject) => {
      if (this.ws.readyState !== WebSocket.OPEN) {
        reject(new ProtocolError("closed", "not connected"));
        return;
      }
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ ...frame, id }));
    });
  }

  close() {
    this.closed = true;
    this.ws?.close(1000);
  }
}
