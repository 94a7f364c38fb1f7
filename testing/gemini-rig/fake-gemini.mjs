#!/usr/bin/env node
// A small fake Gemini API on loopback, for driving the real Gemini CLI offline
// (GOOGLE_GEMINI_BASE_URL points here, GEMINI_API_KEY is any string).
//
// The scripted "model", for generateContent and streamGenerateContent alike:
//   - if a user turn (text or tool response) matches FAKE_TRIGGER and FAKE_TOOL was not called
//                          -> a functionCall to the declared function whose name ends with
//                             FAKE_TOOL, args FAKE_TOOL_INPUT
//   - else if FAKE_FIRST_TOOL is set and only it was called, fewer than FAKE_FIRST_TOOL_MAX times
//                          -> a functionCall to it with FAKE_FIRST_TOOL_INPUT (e.g. a shell
//                             command that waits, so that a message arrives during the turn)
//   - else if the last user turn carries a functionResponse -> text "done: <first 80 chars>"
//   - else                 -> text "ok"
// Requests that are not the agent's own turn (Gemini CLI's side queries with a JSON response
// schema, such as the next-speaker check) get {"next_speaker":"user"}-style JSON answers.
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

// partsText is what the model reads of a turn: its texts and its tools' responses.
const partsText = (c) =>
  (c?.parts ?? []).map((p) => p.text ?? (p.functionResponse ? JSON.stringify(p.functionResponse.response ?? {}) : '')).join('\n');
const matches = (name, want) => name === want || name.endsWith('_' + want);

function decide(body) {
  const contents = body.contents ?? [];
  if (body.generationConfig?.responseMimeType === 'application/json' || body.generationConfig?.responseJsonSchema || body.generationConfig?.responseSchema)
    return { kind: 'text', text: JSON.stringify({ next_speaker: 'user', reasoning: 'fake', complexity_reasoning: 'fake', complexity_score: 1 }) };
  const names = (body.tools ?? []).flatMap((t) => (t.functionDeclarations ?? []).map((f) => f.name));
  const calls = contents.flatMap((c) => (c.parts ?? []).filter((p) => p.functionCall).map((p) => p.functionCall.name));
  const sawChannel = contents.some((c) => c.role === 'user' && TRIGGER.test(partsText(c).replaceAll('\\"', '"')));
  if (sawChannel && !calls.some((n) => matches(n, TOOL))) {
    const name = names.find((n) => matches(n, TOOL));
    if (name) return { kind: 'tool', name, args: TOOL_INPUT };
    return { kind: 'text', text: 'no tool named ' + TOOL + ' is offered' };
  }
  if (FIRST_TOOL && names.length > 0 && calls.every((n) => matches(n, FIRST_TOOL)) && calls.length < FIRST_TOOL_MAX) {
    const name = names.find((n) => matches(n, FIRST_TOOL));
    if (name) return { kind: 'tool', name, args: FIRST_TOOL_INPUT };
  }
  const last = contents[contents.length - 1];
  const fr = (last?.parts ?? []).find((p) => p.functionResponse);
  if (fr) return { kind: 'text', text: 'done: ' + JSON.stringify(fr.functionResponse.response ?? {}).slice(0, 80) };
  return { kind: 'text', text: 'ok' };
}

function answer(d) {
  const part = d.kind === 'tool' ? { functionCall: { name: d.name, args: JSON.parse(d.args) } } : { text: d.text };
  return {
    candidates: [{ content: { role: 'model', parts: [part] }, finishReason: 'STOP', index: 0 }],
    usageMetadata: { promptTokenCount: 10, candidatesTokenCount: 5, totalTokenCount: 15 },
    modelVersion: 'fake',
  };
}

const server = http.createServer((req, res) => {
  let raw = '';
  req.on('data', (c) => (raw += c));
  req.on('end', () => {
    let body = {};
    try { body = JSON.parse(raw || '{}'); } catch { body = { unparsed: raw.slice(0, 2000) }; }
    appendFileSync(LOG, JSON.stringify({ t: new Date().toISOString(), method: req.method, url: req.url, body }) + '\n');
    const url = req.url.split('?')[0];
    const json = (code, v) => { res.writeHead(code, { 'content-type': 'application/json' }); res.end(JSON.stringify(v)); };
    if (req.method === 'POST' && url.endsWith(':countTokens')) return json(200, { totalTokens: 10 });
    if (req.method === 'POST' && url.endsWith(':embedContent')) return json(200, { embedding: { values: [0, 0, 0] } });
    if (req.method === 'POST' && url.endsWith(':generateContent')) return json(200, answer(decide(body)));
    if (req.method === 'POST' && url.endsWith(':streamGenerateContent')) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write(`data: ${JSON.stringify(answer(decide(body)))}\r\n\r\n`);
      return res.end();
    }
    if (req.method === 'GET' && url.includes('/models')) return json(200, { models: [] });
    json(404, { error: { code: 404, message: 'fake: no such endpoint', status: 'NOT_FOUND' } });
  });
});
server.listen(PORT, '127.0.0.1', () => {
  const port = server.address().port;
  if (process.env.PORT_FILE) writeFileSync(process.env.PORT_FILE, String(port));
  console.error(`fake-gemini listening on 127.0.0.1:${port}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
