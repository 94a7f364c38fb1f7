// What the fake model APIs of the Codex and Gemini rigs share (codex-rig/fake-openai.mjs,
// gemini-rig/fake-gemini.mjs): the scripted model's settings, read from the environment, its
// decision, and the loopback HTTP server that logs every request before answering it.
//
// The scripted "model", given what a request holds:
//   - if a message or tool output matches FAKE_TRIGGER and FAKE_TOOL was not called yet
//                          -> a call to the offered tool whose name ends with FAKE_TOOL,
//                             arguments FAKE_TOOL_INPUT
//   - else if FAKE_FIRST_TOOL is set and only it was called, fewer than FAKE_FIRST_TOOL_MAX times
//                          -> a call to it with FAKE_FIRST_TOOL_INPUT (e.g. a shell command that
//                             waits, so that a message arrives during the turn and reaches the
//                             model at the next boundary, after the tool)
//   - else if the last input is a tool's output -> text "done: <first 80 chars>"
//   - else                 -> text "ok"
// Every request (method, url, body) is appended to FAKE_LOG as one JSON line.
// The port it listens on is written to PORT_FILE once it listens (PORT=0 picks a free one).
// Env: PORT (default 0), PORT_FILE, FAKE_LOG (default fake-api.jsonl), FAKE_TRIGGER (a regexp,
//      default (<|&lt;)channel source="conclave" followed by a space),
//      FAKE_TOOL (default send_channel), FAKE_TOOL_INPUT (JSON, default {"channel":"ops","text":"pong"}),
//      FAKE_FIRST_TOOL, FAKE_FIRST_TOOL_INPUT (JSON), FAKE_FIRST_TOOL_MAX (default 1: how often it is
//      called again while no message was seen, for a message that reaches the bridge just after a boundary),
//      FAKE_HOLD_FILE (the model answers a turn only once this file exists: a test makes a message
//      arrive while the model is still answering, so that it is waiting when the agent finishes)
import http from 'node:http';
import { appendFileSync, existsSync, writeFileSync } from 'node:fs';

const env = process.env;
const LOG = env.FAKE_LOG ?? 'fake-api.jsonl';

export const script = {
  tool: env.FAKE_TOOL ?? 'send_channel',
  // A delivered message, as the model sees it: an element with attributes after source (the
  // server's instructions mention a bare <channel source="conclave">); Gemini CLI escapes < in
  // hook context.
  trigger: new RegExp(env.FAKE_TRIGGER ?? '(<|&lt;)channel source="conclave" '),
  toolInput: env.FAKE_TOOL_INPUT ?? JSON.stringify({ channel: 'ops', text: 'pong' }),
  firstTool: env.FAKE_FIRST_TOOL ?? '',
  firstToolInput: env.FAKE_FIRST_TOOL_INPUT ?? '{}',
  firstToolMax: Number(env.FAKE_FIRST_TOOL_MAX ?? 1),
};

// decide plays the model. offered: the callable tools, each {name, namespace?}; called: the names
// of the tools called so far; sawChannel: whether a message or tool output matched the trigger;
// lastOutput: the text of the last input when it is a tool's output, else null; matches(name,
// want): whether a tool's name is the wanted one in the API's naming.
// Returns {kind: 'tool', name, namespace?, args} or {kind: 'text', text}.
export function decide({ offered, called, sawChannel, lastOutput, matches }) {
  const find = (want) => offered.find((t) => matches(t.name, want));
  if (sawChannel && !called.some((n) => matches(n, script.tool))) {
    const tool = find(script.tool);
    if (tool) return { kind: 'tool', ...tool, args: script.toolInput };
    return { kind: 'text', text: 'no tool named ' + script.tool + ' is offered' };
  }
  if (script.firstTool && called.every((n) => matches(n, script.firstTool)) && called.length < script.firstToolMax) {
    const tool = find(script.firstTool);
    if (tool) return { kind: 'tool', ...tool, args: script.firstToolInput };
  }
  if (lastOutput != null) return { kind: 'text', text: 'done: ' + lastOutput.slice(0, 80) };
  return { kind: 'text', text: 'ok' };
}

// hold runs answer once FAKE_HOLD_FILE exists (at once when it is not set), looking every 50 ms.
export function hold(answer) {
  if (!env.FAKE_HOLD_FILE || existsSync(env.FAKE_HOLD_FILE)) return answer();
  setTimeout(() => hold(answer), 50);
}

// sendJSON answers with a JSON body.
export function sendJSON(res, code, v) {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(v));
}

// serve listens on 127.0.0.1:PORT, logs each request to FAKE_LOG and hands it to
// route(method, path, body, res), the body parsed as JSON.
export function serve(name, route) {
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      let body = {};
      try { body = JSON.parse(raw || '{}'); } catch { body = { unparsed: raw.slice(0, 2000) }; }
      appendFileSync(LOG, JSON.stringify({ t: new Date().toISOString(), method: req.method, url: req.url, body }) + '\n');
      route(req.method, req.url.split('?')[0], body, res);
    });
  });
  server.listen(Number(env.PORT ?? 0), '127.0.0.1', () => {
    const port = server.address().port;
    if (env.PORT_FILE) writeFileSync(env.PORT_FILE, String(port));
    console.error(`${name} listening on 127.0.0.1:${port}`);
  });
  for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
}
