// conclave's web client: one page, one WebSocket session, the same
// protocol as the CLI. See proto.js for the key and the handshake, md.js
// for the renderer. All DOM is built with createElement and textContent.

import { Conn, ProtocolError, forgetIdentity, loadIdentity, newIdentity, saveIdentity } from "./proto.js";
import { render } from "./md.js";

const $ = (id) => document.getElementById(id);
// Views other than channels; a channel name cannot hold a control character.
const WHISPERS = "\u0000whispers";
const APPROVALS = "\u0000approvals";
const PAGE = 100; // messages per history page
// Presence: the protocol has no join or leave events (`who` is the only
// source, docs/PROTOCOL.md §5), so the page asks `who` for the channel on
// screen every PRESENCE_EVERY while it is visible, at once when it becomes
// visible again, and when a post comes from a session not in the list.
// A hidden page asks nothing: the server's WebSocket pings, which the
// browser answers by itself, keep the session alive.
const PRESENCE_EVERY = 10_000; // ms

const state = {
  conn: null,
  ident: null,
  me: null, // {path, user, machine, admin}
  channels: [], // from list_channels, plus channels joined by name
  chans: new Map(), // name -> {msgs: Map seq->msg, order: [seq], more, oldest, joined, unread}
  view: null, // channel name or "whispers"
  whispers: [],
  unreadWhispers: 0,
  whisperTarget: null,
  approvals: new Map(), // from + " " + request_id -> pending permission request
  approver: null, // true, false (approverWhy says why not), null before the first check
  approverWhy: "",
  isChanAdmin: false,
  presence: new Set(), // the session paths in the list shown
  presenceKey: "", // what the list shows, to redraw it only when it changes
  presenceAsked: 0, // numbers the who requests; only the latest answer is drawn
  retry: 0,
  timer: null,
  stopped: false,
};

// ---------------------------------------------------------------- helpers

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "data") Object.assign(e.dataset, v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}

let noticeTimer;
function notice(text, isError = false) {
  const n = $("notice");
  n.textContent = text;
  n.classList.toggle("error", isError);
  n.hidden = !text;
  clearTimeout(noticeTimer);
  if (text && !isError) noticeTimer = setTimeout(() => (n.hidden = true), 6000);
}

function fail(err) {
  notice(err instanceof ProtocolError || err instanceof Error ? err.message : String(err), true);
}

function setStatus(s, text) {
  const st = $("status");
  st.dataset.state = s;
  st.textContent = text || s;
}

const timeFmt = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit" });
const dayFmt = new Intl.DateTimeFormat([], { year: "numeric", month: "short", day: "numeric" });
const today = () => dayFmt.format(Date.now());

function fmtTime(ms) {
  const day = dayFmt.format(ms);
  return day === today() ? timeFmt.format(ms) : day + " " + timeFmt.format(ms);
}

// isChannel reports whether a view is a channel (not whispers or approvals).
function isChannel(view) {
  return !!view && view !== WHISPERS && view !== APPROVALS;
}

function chan(name) {
  let c = state.chans.get(name);
  if (!c) {
    c = { msgs: new Map(), order: [], more: true, oldest: 0, joined: false, unread: 0, loaded: false };
    state.chans.set(name, c);
  }
  return c;
}

// ------------------------------------------------------------ start-up

async function start() {
  applyTheme(localStorage.getItem("theme"));
  if (!window.isSecureContext || !crypto.subtle) {
    setStatus("offline", "insecure");
    notice("This page needs a secure context (https:// or localhost) to make and use its key. Open it through the server's https:// address (see conclave serve --public-url).", true);
    return;
  }
  let token = null;
  const m = /^#enroll=([A-Za-z0-9_-]{1,128})$/.exec(location.hash);
  if (m) {
    token = m[1];
    history.replaceState(null, "", location.pathname + location.search); // the link works once; keep it out of history
  }
  let ident;
  try {
    ident = await loadIdentity();
  } catch (e) {
    fail(new Error("IndexedDB is not available, so this browser cannot keep a key: " + e.message));
    return;
  }
  if (ident?.enrolled) {
    if (token) notice(`This browser is already enrolled (as ${ident.path || "a machine"}); the link was not used.`);
    token = null;
  } else if (token) {
    if (!ident) {
      ident = await newIdentity();
      await saveIdentity(ident);
    }
  } else {
    $("welcome").hidden = false;
    setStatus("offline", "not enrolled");
    return;
  }
  state.ident = ident;
  await connect(token);
}

function handle() {
  const a = new Uint8Array(4);
  crypto.getRandomValues(a);
  return "web-" + Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function connect(token) {
  setStatus("connecting", "connecting…");
  const conn = new Conn({ onFrame, onClose });
  const ident = state.ident;
  try {
    const est = await conn.open(ident, state.session || (state.session = handle()), { token, pinned: ident.enrolled ? ident.serverID : undefined });
    if (token) {
      ident.enrolled = true;
      ident.serverID = conn.serverID;
      notice("This browser is now enrolled as one of your machines.");
    }
    ident.path = est.path;
    await saveIdentity(ident);
  } catch (err) {
    if (token) {
      // The key was not enrolled: do not keep a key no server knows.
      await forgetIdentity().catch(() => {});
      $("welcome").hidden = false;
      setStatus("offline", "not enrolled");
      fail(err);
      return;
    }
    if (err.reason === "unknown_key" || err.reason === "machine_revoked") {
      revoked(err);
      return;
    }
    if (err.code === "pin") {
      setStatus("offline", "wrong server");
      fail(err);
      return;
    }
    scheduleReconnect(err);
    return;
  }
  state.conn = conn;
  state.retry = 0;
  const [user, machine] = conn.path.split("/");
  state.me = { path: conn.path, user, machine, admin: conn.admin };
  $("me").textContent = conn.path + (conn.admin ? " · server admin" : "");
  $("machine-info").textContent = `Machine "${machine}" of ${user}. Its private key was made in this browser and cannot be exported. Session ${conn.path}.`;
  $("app").hidden = false;
  $("welcome").hidden = true;
  setStatus("live", "live");
  $("input").disabled = false;
  $("send").disabled = false;
  await checkApprovals();
  await resume();
  clearInterval(state.timer);
  state.timer = setInterval(() => {
    if (document.visibilityState === "visible") refreshPresence();
  }, PRESENCE_EVERY);
}

function scheduleReconnect(err) {
  if (state.stopped) return;
  const wait = Math.min(30_000, 1000 * 2 ** state.retry++);
  setStatus("offline", "offline — retrying");
  if (err) notice(`Disconnected: ${err.message}. Retrying in ${Math.round(wait / 1000)} s.`, true);
  setTimeout(() => connect(null), wait);
}

function revoked(err) {
  state.stopped = true;
  clearInterval(state.timer);
  setStatus("revoked", "revoked");
  $("input").disabled = true;
  $("send").disabled = true;
  notice(`This browser's machine key no longer works (${err.message}). Run \`conclave web\` on an enrolled machine for a new link, and use "Forget this browser's key" first.`, true);
}

function onClose(err) {
  state.conn = null;
  clearInterval(state.timer);
  for (const c of state.chans.values()) c.joined = false;
  $("input").disabled = true;
  $("send").disabled = true;
  if (err.reason === "machine_revoked" || err.reason === "user_removed") {
    revoked(err);
    return;
  }
  scheduleReconnect(err);
}

// resume lists channels and, after a reconnection, rejoins the channels
// that were open and fetches what was missed (after the last seq seen).
async function resume() {
  await loadChannels();
  const want = isChannel(state.view) ? state.view : localStorage.getItem("channel");
  for (const [name, c] of state.chans) {
    if (c.loaded && name !== want) {
      await join(name).catch(() => {});
    }
  }
  if (want && (state.channels.some((ch) => ch.name === want) || state.chans.has(want))) await openChannel(want);
  else if (state.view === WHISPERS) showWhispers();
  else if (state.view === APPROVALS) showApprovals();
  else if (state.channels.length) await openChannel(state.channels[0].name);
  else showEmpty();
}

async function loadChannels() {
  const r = await state.conn.request({ type: "list_channels" });
  const listed = r.channels || [];
  for (const name of state.chans.keys()) {
    if (!listed.some((c) => c.name === name)) listed.push({ name, visibility: "joined", member: false });
  }
  listed.sort((a, b) => a.name.localeCompare(b.name));
  state.channels = listed;
  drawChannels();
}

function drawChannels() {
  const ul = $("channel-list");
  ul.replaceChildren();
  for (const ch of state.channels) {
    const c = state.chans.get(ch.name);
    const btn = el("button", { type: "button", class: "chan", "data-channel": ch.name, onclick: () => openChannel(ch.name).catch(fail) }, "# " + ch.name);
    if (ch.visibility !== "public") btn.append(el("span", { class: "vis", text: ch.visibility }));
    if (c?.unread) btn.append(el("span", { class: "badge", text: String(c.unread) }));
    if (state.view === ch.name) btn.setAttribute("aria-current", "true");
    ul.append(el("li", {}, btn));
  }
  for (const [tab, view] of [["whispers-tab", WHISPERS], ["approvals-tab", APPROVALS]]) {
    if (state.view === view) $(tab).setAttribute("aria-current", "true");
    else $(tab).removeAttribute("aria-current");
  }
  const badge = $("whisper-badge");
  badge.hidden = !state.unreadWhispers;
  badge.textContent = String(state.unreadWhispers);
  const ab = $("approval-badge");
  ab.hidden = !state.approvals.size;
  ab.textContent = String(state.approvals.size);
}

function showEmpty() {
  state.view = null;
  $("view-title").textContent = "No channels yet";
  $("view-meta").textContent = "";
  $("messages").replaceChildren(el("p", { class: "meta", text: "Join a channel by name, or create one with `conclave channel create NAME`." }));
}

// ---------------------------------------------------------- channels

async function join(name, token) {
  const f = { type: "join", channel: name };
  if (token) f.token = token;
  await state.conn.request(f);
  const c = chan(name);
  c.joined = true;
  if (!c.loaded) {
    await loadOlder(name, true);
    c.loaded = true;
  } else {
    await catchUp(name);
  }
}

// catchUp reads what was posted while this page was disconnected.
async function catchUp(name) {
  const c = chan(name);
  let after = c.order.length ? c.order[c.order.length - 1] : 0;
  for (let pages = 0; pages < 20; pages++) {
    const h = await state.conn.request({ type: "read_since", channel: name, after_seq: after, limit: 500 });
    for (const m of h.messages || []) addMessage(name, m, false);
    if (!h.more || !h.next_seq) break;
    after = h.next_seq;
  }
  if (state.view === name) drawMessages(true);
}

// loadOlder reads the page before the oldest message held. The first
// page (first=true) is the newest: the server answers it only once every
// post numbered before the request is stored, and the subscription made
// by join is already live, so page + deliveries, merged by seq, have no
// gap and no duplicate.
async function loadOlder(name, first = false) {
  const c = chan(name);
  if (!first && (!c.more || c.loading)) return;
  c.loading = true;
  try {
    const before = first ? 0 : c.oldest;
    const h = await state.conn.request({ type: "read_since", channel: name, before_seq: before, limit: PAGE });
    for (const m of h.messages || []) addMessage(name, m, false);
    c.more = !!h.more;
    if (h.messages?.length && (!c.oldest || h.messages[0].seq < c.oldest)) c.oldest = h.messages[0].seq;
    if (state.view === name) drawMessages(first, !first);
  } finally {
    c.loading = false;
  }
}

function addMessage(name, m, live) {
  if (m.gap) return false; // a number the history does not hold (docs/PROTOCOL.md, read_since)
  const c = chan(name);
  if (c.msgs.has(m.seq)) return false; // the same post from the page and the live stream
  c.msgs.set(m.seq, m);
  const last = c.order[c.order.length - 1];
  if (last === undefined || m.seq > last) c.order.push(m.seq);
  else {
    let i = c.order.length;
    while (i > 0 && c.order[i - 1] > m.seq) i--;
    c.order.splice(i, 0, m.seq);
  }
  if (!c.oldest || m.seq < c.oldest) c.oldest = m.seq;
  if (live && state.view !== name) {
    c.unread++;
    drawChannels();
  }
  return true;
}

async function openChannel(name) {
  if (!state.conn) return;
  state.view = name;
  localStorage.setItem("channel", name);
  const c = chan(name);
  c.unread = 0;
  $("view-title").textContent = "# " + name;
  $("view-meta").textContent = "";
  $("messages").replaceChildren(el("p", { class: "meta", text: "loading…" }));
  drawChannels();
  if (!c.joined) {
    try {
      await join(name);
    } catch (err) {
      $("messages").replaceChildren();
      fail(err);
      return;
    }
    if (!state.channels.some((ch) => ch.name === name)) await loadChannels();
  }
  if (state.view !== name) return;
  drawMessages(true);
  refreshPresence();
  probeAdmin(name);
}

// ---------------------------------------------------------- messages

function messageNode(m, kind, channel) {
  const head = el("header", {}, el("span", { class: "from", text: m.from }), el("time", { class: "ts", datetime: new Date(m.ts_ms).toISOString(), text: fmtTime(m.ts_ms) }));
  const body = el("div", { class: "body" });
  if (m.sealed) body.append(el("span", { class: "sealed", text: "[encrypted message]" }));
  else body.append(render(m.body ?? ""));
  const node = el("article", { class: "msg " + kind }, head, body);
  if (kind === "whisper") {
    const other = m.from === state.me?.path ? m.target : m.from;
    head.prepend(el("span", { class: "meta", text: m.from === state.me?.path ? "to " + m.target + " ·" : "✉" }));
    if (other && other !== state.me?.path) head.append(el("button", { type: "button", class: "ghost reply", text: "reply", onclick: () => whisperTo(other) }));
  } else {
    node.dataset.seq = String(m.seq);
    node.dataset.channel = channel;
  }
  return node;
}

// drawMessages renders the current channel. toBottom scrolls to the
// newest; keepOffset keeps the view still while older pages are added.
function drawMessages(toBottom, keepOffset) {
  const name = state.view;
  const c = state.chans.get(name);
  if (!c) return;
  const box = $("messages");
  const fromBottom = box.scrollHeight - box.scrollTop;
  const frag = document.createDocumentFragment();
  if (c.more) frag.append(el("button", { type: "button", class: "ghost older", id: "older", text: "Load older messages", onclick: () => loadOlder(name).catch(fail) }));
  else if (c.order.length) frag.append(el("p", { class: "meta", text: "Start of the retained history." }));
  else frag.append(el("p", { class: "meta", text: "No messages yet." }));
  for (const seq of c.order) frag.append(messageNode(c.msgs.get(seq), "", name));
  box.replaceChildren(frag);
  $("view-meta").textContent = c.order.length + " messages";
  if (keepOffset) box.scrollTop = box.scrollHeight - fromBottom;
  else if (toBottom) box.scrollTop = box.scrollHeight;
}

function appendLive(name, m) {
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
  const c = state.chans.get(name);
  if (c.order[c.order.length - 1] !== m.seq) {
    drawMessages(atBottom); // arrived out of order: redraw
    return;
  }
  box.querySelector(":scope > p.meta:last-child")?.remove();
  box.append(messageNode(m, "", name));
  $("view-meta").textContent = c.order.length + " messages";
  if (atBottom) box.scrollTop = box.scrollHeight;
}

function onFrame(f) {
  switch (f.type) {
    case "channel_msg":
      if (addMessage(f.channel, f, true) && state.view === f.channel) {
        appendLive(f.channel, f);
        if (!state.presence.has(f.from)) {
          state.presence.add(f.from); // ask once, not once per post of a burst
          refreshPresence();
        }
      }
      break;
    case "whisper":
      state.whispers.push(f);
      if (state.view === WHISPERS) drawWhispers();
      else {
        state.unreadWhispers++;
        drawChannels();
        notice(`Whisper from ${f.from}`);
      }
      break;
    case "permission_request":
      if (state.approver !== false) {
        state.approvals.set(f.from + " " + f.request_id, f);
        drawChannels();
        if (state.view === APPROVALS) drawApprovals();
        else notice(`${f.from} asks to run ${f.tool_name}: see approvals.`);
      }
      break;
    case "permission_resolved":
      if (state.approvals.delete(f.from + " " + f.request_id)) {
        drawChannels();
        if (state.view === APPROVALS) drawApprovals();
      }
      break;
    case "unsubscribed": {
      const c = chan(f.channel);
      c.joined = false;
      notice(`Left #${f.channel}: ${f.reason}`, true);
      loadChannels().catch(() => {});
      break;
    }
    case "renamed": {
      const c = state.chans.get(f.channel);
      if (c) {
        state.chans.delete(f.channel);
        state.chans.set(f.new_name, c);
      }
      if (state.view === f.channel) {
        state.view = f.new_name;
        $("view-title").textContent = "# " + f.new_name;
      }
      loadChannels().catch(() => {});
      break;
    }
  }
}

// ---------------------------------------------------------- whispers

function showWhispers() {
  state.view = WHISPERS;
  state.unreadWhispers = 0;
  $("view-title").textContent = "✉ Whispers";
  $("admin-box").hidden = true;
  drawChannels();
  drawWhispers();
  refreshPresence();
}

function drawWhispers() {
  const box = $("messages");
  const frag = document.createDocumentFragment();
  if (!state.whispers.length) frag.append(el("p", { class: "meta", text: "Whispers to and from this session show here. They are never stored: only what arrives while this page is open." }));
  for (const w of state.whispers) frag.append(messageNode(w, "whisper"));
  box.replaceChildren(frag);
  $("view-meta").textContent = state.whispers.length + " whispers";
  box.scrollTop = box.scrollHeight;
}

function whisperTo(path) {
  state.whisperTarget = path;
  $("whisper-target").textContent = path;
  $("whisper-to").hidden = false;
  $("input").focus();
}

function cancelWhisper() {
  state.whisperTarget = null;
  $("whisper-to").hidden = true;
}

// ---------------------------------------------------------- approvals

// checkApprovals asks for the pending permission requests. Only a person's
// session on one of the user's approver machines may: elsewhere the server
// refuses, and the page shows why.
async function checkApprovals() {
  try {
    const r = await state.conn.request({ type: "permission_list" });
    state.approver = true;
    state.approverWhy = "";
    state.approvals.clear();
    for (const p of r.permissions || []) state.approvals.set(p.from + " " + p.request_id, p);
  } catch (err) {
    state.approver = false;
    state.approverWhy = err.message;
    state.approvals.clear();
  }
  drawChannels();
  if (state.view === APPROVALS) drawApprovals();
}

function showApprovals() {
  state.view = APPROVALS;
  $("view-title").textContent = "✔ Approvals";
  $("admin-box").hidden = true;
  drawChannels();
  drawApprovals();
  checkApprovals();
}

function drawApprovals() {
  const box = $("messages");
  const frag = document.createDocumentFragment();
  if (state.approver === false) {
    frag.append(el("p", { class: "meta", id: "approvals-refused", text: "This browser cannot answer permission requests: " + state.approverWhy }));
  } else if (!state.approvals.size) {
    frag.append(el("p", { class: "meta", text: "No permission requests are waiting. When one of your agents asks to run a tool, it shows here." }));
  }
  const list = [...state.approvals.values()].sort((a, b) => a.ts_ms - b.ts_ms);
  for (const p of list) {
    const decide = (behavior) => verdict(p, behavior);
    const card = el("article", { class: "msg approval", "data-request-id": p.request_id, "data-from": p.from },
      el("header", {}, el("strong", { class: "tool", text: p.tool_name }), el("span", { class: "from", text: p.from }),
        el("time", { class: "ts", datetime: new Date(p.ts_ms).toISOString(), text: fmtTime(p.ts_ms) }), el("span", { class: "meta", text: "#" + p.request_id })));
    if (p.description) card.append(el("p", { class: "desc", text: p.description }));
    if (p.input_preview) card.append(el("pre", { class: "preview" }, el("code", { text: p.input_preview })));
    card.append(el("div", { class: "actions" },
      el("button", { type: "button", class: "allow", text: "Allow", "aria-label": `Allow ${p.tool_name} for ${p.from}`, onclick: () => decide("allow") }),
      el("button", { type: "button", class: "danger deny", text: "Deny", "aria-label": `Deny ${p.tool_name} for ${p.from}`, onclick: () => decide("deny") })));
    frag.append(card);
  }
  box.replaceChildren(frag);
  $("view-meta").textContent = state.approver ? state.approvals.size + " waiting" : "";
}

async function verdict(p, behavior) {
  try {
    await state.conn.request({ type: "permission_verdict", request_id: p.request_id, behavior, target: p.from });
    notice(`${behavior === "allow" ? "Allowed" : "Denied"} ${p.tool_name} for ${p.from}.`);
  } catch (err) {
    fail(err);
  }
  state.approvals.delete(p.from + " " + p.request_id);
  drawChannels();
  if (state.view === APPROVALS) drawApprovals();
}

// ---------------------------------------------------------- posting

async function send() {
  const input = $("input");
  const text = input.value;
  if (!text.trim() || !state.conn) return;
  try {
    if (state.whisperTarget) {
      const target = state.whisperTarget;
      const r = await state.conn.request({ type: "whisper", target, body: text });
      state.whispers.push({ from: state.me.path, target, body: text, ts_ms: r.ts_ms });
      if (state.view === WHISPERS) drawWhispers();
      else notice(`Whispered to ${target}.`);
    } else if (isChannel(state.view)) {
      const name = state.view;
      const r = await state.conn.request({ type: "channel_msg", channel: name, body: text });
      const m = { seq: r.seq, from: state.me.path, ts_ms: r.ts_ms, body: text };
      if (addMessage(name, m, false) && state.view === name) appendLive(name, m);
    } else {
      notice("Pick a channel, or whisper to someone from the list of who is here.", true);
      return;
    }
    input.value = "";
  } catch (err) {
    fail(err);
  }
}

// ---------------------------------------------------------- presence

async function refreshPresence() {
  if (!state.conn) return;
  const name = isChannel(state.view) ? state.view : null;
  const asked = ++state.presenceAsked;
  let r;
  try {
    r = await state.conn.request(name ? { type: "who", channel: name } : { type: "who" });
  } catch {
    return;
  }
  if (asked !== state.presenceAsked) return; // a later question (another view, perhaps) answers instead
  const sessions = r.sessions || [];
  const key = JSON.stringify([name, state.isChanAdmin, state.me?.path, sessions]);
  if (key === state.presenceKey) return; // unchanged: keep the list (and the focus in it)
  state.presenceKey = key;
  state.presence = new Set(sessions);
  const ul = $("presence");
  ul.replaceChildren();
  $("presence-count").textContent = `(${sessions.length}${name ? " in #" + name : " on the server"})`;
  for (const p of sessions) {
    const li = el("li", { "data-path": p }, el("span", { class: "who", title: p, text: p + (p === state.me?.path ? " (you)" : "") }));
    if (p !== state.me?.path) li.append(el("button", { type: "button", class: "ghost", text: "whisper", "aria-label": "Whisper to " + p, onclick: () => whisperTo(p) }));
    if (state.isChanAdmin && name && p !== state.me?.path) li.append(el("button", { type: "button", class: "danger", text: "kick", "aria-label": "Kick " + p, onclick: () => admin({ type: "kick", channel: name, target: p }, `Kicked ${p}`) }));
    ul.append(li);
  }
}

// ---------------------------------------------------------- channel admin

async function probeAdmin(name) {
  let acl;
  try {
    acl = await state.conn.request({ type: "acl_list", channel: name });
  } catch {
    state.isChanAdmin = false;
    $("admin-box").hidden = true;
    return;
  }
  if (state.view !== name) return;
  state.isChanAdmin = true;
  $("admin-box").hidden = false;
  drawRows("acl", acl.users || [], (u) => ({ text: "remove", frame: { type: "acl_remove", channel: name, user: u }, done: `Removed ${u} from the access list` }));
  try {
    const inv = await state.conn.request({ type: "invite_list", channel: name });
    drawInvites(name, inv.invites || []);
    const bans = await state.conn.request({ type: "ban_list", channel: name });
    drawRows("bans", bans.users || [], (u) => ({ text: "unban", frame: { type: "unban", channel: name, user: u }, done: `Unbanned ${u}` }));
  } catch (err) {
    fail(err);
  }
  refreshPresence();
}

function drawRows(id, items, action) {
  const ul = $(id);
  ul.replaceChildren();
  if (!items.length) ul.append(el("li", { class: "meta", text: "none" }));
  for (const it of items) {
    const a = action(it);
    ul.append(el("li", { "data-item": it }, el("span", { class: "who", text: it }), el("button", { type: "button", class: "danger", text: a.text, onclick: () => admin(a.frame, a.done) })));
  }
}

function drawInvites(name, invites) {
  const ul = $("invites");
  ul.replaceChildren();
  if (!invites.length) ul.append(el("li", { class: "meta", text: "none" }));
  for (const inv of invites) {
    const info = `${inv.token.slice(0, 8)}… · ${inv.uses == null ? "∞" : inv.uses} uses · ${inv.expires_at ? "until " + new Date(inv.expires_at).toLocaleString() : "no expiry"}`;
    ul.append(el("li", { "data-token": inv.token }, el("span", { class: "who", title: inv.token, text: info }), el("button", { type: "button", class: "danger", text: "revoke", onclick: () => admin({ type: "invite_revoke", channel: name, token: inv.token }, "Invite revoked") })));
  }
}

async function admin(frame, done) {
  try {
    await state.conn.request(frame);
    notice(done);
  } catch (err) {
    fail(err);
  }
  if (state.view === frame.channel) await probeAdmin(frame.channel);
}

function joinLine(channel, token) {
  const url = new URL("../", location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const server = url.href.replace(/\/$/, "");
  return `conclave join ${/^[A-Za-z0-9._-]+$/.test(channel) ? channel : JSON.stringify(channel)} --token ${token} --server ${server}`;
}

// ---------------------------------------------------------- theme, keys

function applyTheme(t) {
  if (t === "light" || t === "dark") document.documentElement.dataset.theme = t;
  else delete document.documentElement.dataset.theme;
}

function toggleTheme() {
  const dark = document.documentElement.dataset.theme ? document.documentElement.dataset.theme === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
  const t = dark ? "light" : "dark";
  localStorage.setItem("theme", t);
  applyTheme(t);
}

function moveChannel(step) {
  const names = state.channels.map((c) => c.name);
  const i = names.indexOf(state.view);
  const next = names[(i + step + names.length) % names.length];
  if (next) openChannel(next).then(() => document.querySelector(`[data-channel="${CSS.escape(next)}"]`)?.focus());
}

function wire() {
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });
  $("input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    } else if (e.key === "Escape") {
      if (state.whisperTarget) cancelWhisper();
      else $("input").blur();
    }
  });
  $("whisper-cancel").addEventListener("click", cancelWhisper);
  $("whispers-tab").addEventListener("click", showWhispers);
  $("approvals-tab").addEventListener("click", showApprovals);
  $("theme").addEventListener("click", toggleTheme);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refreshPresence();
  });
  $("messages").addEventListener("scroll", () => {
    const box = $("messages");
    if (box.scrollTop < 40 && isChannel(state.view)) loadOlder(state.view).catch(fail);
  });
  $("join-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = $("join-name").value.trim().replace(/^#/, "");
    const token = $("join-token").value.trim();
    if (!name) return;
    try {
      await join(name, token || undefined);
      $("join-name").value = "";
      $("join-token").value = "";
      await loadChannels();
      await openChannel(name);
    } catch (err) {
      fail(err);
    }
  });
  $("acl-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const user = $("acl-user").value.trim();
    if (user) admin({ type: "acl_add", channel: state.view, user }, `Added ${user} to the access list`).then(() => ($("acl-user").value = ""));
  });
  $("invite-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = { type: "invite_create", channel: state.view };
    const uses = parseInt($("invite-uses").value, 10);
    const hours = parseInt($("invite-hours").value, 10);
    if (uses > 0) f.uses = uses;
    if (hours > 0) f.expires_in_secs = hours * 3600;
    try {
      const r = await state.conn.request(f);
      $("invite-line").textContent = joinLine(state.view, r.token);
      $("invite-new").hidden = false;
      await probeAdmin(state.view);
    } catch (err) {
      fail(err);
    }
  });
  $("invite-copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("invite-line").textContent);
      notice("Copied.");
    } catch {
      getSelection().selectAllChildren($("invite-line"));
      notice("Selected: copy it with your keyboard.");
    }
  });
  $("kick-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const target = $("kick-target").value.trim();
    if (target) admin({ type: "kick", channel: state.view, target }, `Kicked ${target}`);
  });
  $("ban-btn").addEventListener("click", () => {
    const user = $("kick-target").value.trim();
    if (user) admin({ type: "ban", channel: state.view, user }, `Banned ${user}`);
  });
  $("forget").addEventListener("click", async () => {
    if (!confirm("Forget this browser's key? You will need a new link from `conclave web`, and should remove this machine with `conclave machine remove`.")) return;
    state.stopped = true;
    state.conn?.close();
    await forgetIdentity();
    location.reload();
  });
  document.addEventListener("keydown", (e) => {
    const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement?.tagName);
    if (e.altKey && (e.key === "ArrowDown" || e.key === "ArrowUp")) {
      e.preventDefault();
      moveChannel(e.key === "ArrowDown" ? 1 : -1);
    } else if (!typing && e.key === "/") {
      e.preventDefault();
      $("input").focus();
    } else if (!typing && e.key === "t" && !e.ctrlKey && !e.metaKey) {
      toggleTheme();
    }
  });
}

// A link opened in a tab that already shows the page changes only the
// fragment: start over, so that the link is handled.
window.addEventListener("hashchange", () => {
  if (location.hash.startsWith("#enroll=")) location.reload();
});

wire();
start().catch(fail);
