#!/usr/bin/env node
// A small fake OpenAI Responses API on loopback, for driving the real Codex CLI offline
// (a custom model provider whose base_url points here, wire_api = "responses").
//
// The scripted "model":
//   - if a message or tool output matches FAKE_TRIGGER and FAKE_TOOL was not called yet
//                          -> a function_call to the tool whose name ends with FAKE_TOOL,
//                             arguments FAKE_TOOL_INPUT
//   - else if FAKE_FIRST_TOOL is set and only it was called, fewer than FAKE_FIRST_TOOL_MAX times
//                          -> a function_call to it with FAKE_FIRST_TOOL_INPUT (e.g. a shell
//                             command that waits, so that a message arrives during the turn
//                             and reaches the model at the next boundary, after the tool)
//   - else if the last input item is a function_call_output -> text "done: <first 80 chars>"
//   - else                 -> text "ok"
// Every request (method, url, body) is appended to FAKE_LOG as one JSON line.
// The port it listens on is written to PORT_FILE once it listens (PORT=0 picks a free one).
// Env: PORT (default 0), PORT_FILE, FAKE_LOG (default fake-api.jsonl), FAKE_TRIGGER (a regexp,
//      default (<|&lt;)channel source="conclave" followed by a space),
//      FAKE_TOOL (default send_channel), FAKE_TOOL_INPUT (JSON, default {"channel":"ops","text":"pong"}),
//      FAKE_FIRST_TOOL, FAKE_FIRST_TOOL_INPUT (JSON), FAKE_FIRST_TOOL_MAX (default 1: how often it is
//      called again while no message was seen, for a message that reaches the bridge just after a boundary)
import http from 'node:http';
import { appendFileSync, writeFileSync } from 'node:fs';

const PORT = Number(process.env.PORT ?? 0);
const LOG = process.env.FAKE_LOG ?? 'fake-api.jsonl';
const TOOL = process.env.FAKE_TOOL ?? 'send_channel';
// A delivered message, as the model sees it: an element with attributes after source (the
// server's instructions mention a bare <channel source="conclave">); Gemini CLI escapes < in hook context.
const TRIGGER = new RegExp(process.env.FAKE_TRIGGER ?? '(<|&lt;)channel source="conclave" ');
const TOOL_INPUT = process.env.FAKE_TOOL_INPUT ?? JSON.stringify({ channel: 'ops', text: 'pong' });
const FIRST_TOOL = process.env.FAKE_FIRST_TOOL ?? '';
const FIRST_TOOL_INPUT = process.env.FAKE_FIRST_TOOL_INPUT ?? '{}';
const FIRST_TOOL_MAX = Number(process.env.FAKE_FIRST_TOOL_MAX ?? 1);
let n = 0;

// toolNames lists the callable names in a request's tools, with the namespace each sits in.
function toolNames(tools, ns) {
  const out = [];
  for (const t of tools ?? []) {
    if (t.type === 'namespace' || Array.isArray(t.tools)) out.push(...toolNames(t.tools, t.name));
    else if (t.name) out.push({ name: t.name, namespace: ns });
  }
  return out;
}

// textOf is what the model reads of an input item: a message's text, or a tool's output.
function textOf(item) {
  const parts = (c) => (typeof c === 'string' ? c : Array.isArray(c) ? c.map((x) => x.text ?? '').join('\n') : '');
  if (item.type === 'message') return parts(item.content);
  if (item.type === 'function_call_output') return parts(item.output);
  return '';
}

const matches = (name, want) => name === want || name.endsWith('__' + want) || name.endsWith(want);

function decide(body) {
  const input = Array.isArray(body.input) ? body.input : [];
  const calls = input.filter((i) => i.type === 'function_call');
  const sawChannel = input.some((i) => TRIGGER.test(textOf(i)));
  if (sawChannel && !calls.some((c) => matches(c.name, TOOL))) {
    const tool = toolNames(body.tools).find((t) => matches(t.name, TOOL));
    if (tool) return { kind: 'tool', ...tool, args: TOOL_INPUT };
    return { kind: 'text', text: 'no tool named ' + TOOL + ' is offered' };
  }
  const names = calls.map((c) => c.name);
  if (FIRST_TOOL && names.every((n) => matches(n, FIRST_TOOL)) && names.length < FIRST_TOOL_MAX) {
    const tool = toolNames(body.tools).find((t) => matches(t.name, FIRST_TOOL));
    if (tool) return { kind: 'tool', ...tool, args: FIRST_TOOL_INPUT };
  }
  const last = input[input.length - 1];
  if (last?.type === 'function_call_output') return { kind: 'text', text: 'done: ' + textOf(last).slice(0, 80) };
  return { kind: 'text', text: 'ok' };
}

function events(d, id) {
  const item =
    d.kind === 'tool'
      ? { type: 'function_call', id: `fc_${id}`, call_id: `call_${id}`, name: d.name, arguments: d.args, ...(d.namespace ? { namespace: d.namespace } : {}) }
      : { type: 'message', role: 'assistant', id: `msg_${id}`, content: [{ type: 'output_text', text: d.text, annotations: [] }] };
  const usage = { input_tokens: 10, input_tokens_details: null, output_tokens: 5, output_tokens_details: null, total_tokens: 15 };
  return [
    { type: 'response.created', response: { id: `resp_${id}` } },
    { type: 'response.output_item.added', output_index: 0, item },
    { type: 'response.output_item.done', output_index: 0, item },
    { type: 'response.completed', response: { id: `resp_${id}`, usage } },
  ];
}

const server = http.createServer((req, res) => {
  let raw = '';
  req.on('data', (c) => (raw += c));
  req.on('end', () => {
    let body = {};
    try { body = JSON.parse(raw || '{}'); } catch { body = { unparsed: raw.slice(0, 2000) }; }
    appendFileSync(LOG, JSON.stringify({ t: new Date().toISOString(), method: req.method, url: req.url, body }) + '\n');
    const url = req.url.split('?')[0];
    if (req.method === 'GET' && url.endsWith('/models')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ object: 'list', data: [], models: [] }));
    }
    if (!(req.method === 'POST' && url.endsWith('/responses'))) {
      res.writeHead(404, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ error: { message: 'fake: no such endpoint', type: 'invalid_request_error' } }));
    }
    const id = ++n;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    for (const ev of events(decide(body), id)) res.write(`event: ${ev.type}\ndata: ${JSON.stringify(ev)}\n\n`);
    res.end();
  });
});
server.listen(PORT, '127.0.0.1', () => {
  const port = server.address().port;
  if (process.env.PORT_FILE) writeFileSync(process.env.PORT_FILE, String(port));
  console.error(`fake-openai listening on 127.0.0.1:${port}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
