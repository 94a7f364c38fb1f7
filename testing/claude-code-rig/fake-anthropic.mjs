#!/usr/bin/env node
// Minimal fake Anthropic Messages API for driving Claude Code offline (ANTHROPIC_BASE_URL).
// Scripted "model":
//   - if the next step of the script is due               -> tool_use of that step
//   - else if the input since the last answer has a tool_result -> text "done: <first 80 chars of result>"
//   - else                                                -> text "ok"
// The script (FAKE_SCRIPT, a JSON array) is a list of tool calls made in order:
//   [{"name": "mcp__conclave__send_channel", "input": {...}, "on": "<channel"}, ...]
// A step is due once any user (or system) message of the conversation, tool results included, contains
// its "on" text (default "<channel"); with "in": "all", any message or the system prompt. A due
// step is made at once, even right after the previous step's result, so give later steps their
// own "on" marker. Steps already made are counted from the tool_use blocks in the conversation:
// the fake keeps no state.
// FAKE_TOOL + FAKE_TOOL_INPUT (the shared rig's interface) are a one-step script.
// Every request body is appended to $FAKE_LOG (JSON lines).
// Env: PORT (default 8765), FAKE_LOG, FAKE_SCRIPT or FAKE_TOOL / FAKE_TOOL_INPUT (JSON)
import http from 'node:http';
import { appendFileSync } from 'node:fs';

const PORT = Number(process.env.PORT ?? 8765);
const LOG = process.env.FAKE_LOG ?? 'fake-api.jsonl';
const SCRIPT = process.env.FAKE_SCRIPT
  ? JSON.parse(process.env.FAKE_SCRIPT)
  : [{ name: process.env.FAKE_TOOL ?? 'mcp__tapped__echo', input: JSON.parse(process.env.FAKE_TOOL_INPUT ?? JSON.stringify({ text: 'from fake model' })) }];
let n = 0;

const textOf = (content) =>
  typeof content === 'string'
    ? content
    : (content ?? []).map((b) => b.text ?? (b.type === 'tool_result' ? JSON.stringify(b.content) : '')).join('\n');

const hasToolUse = (m) => m.role === 'assistant' && Array.isArray(m.content) && m.content.some((b) => b.type === 'tool_use');

// Claude Code sends a channel message that arrives mid-turn as a message of
// role "system" ("A message arrived from conclave while you were working:
// <channel …>"), so user and system messages both count as input.
const isInput = (m) => m.role === 'user' || m.role === 'system';

function decide(body) {
  const msgs = body.messages ?? [];
  const sinceAssistant = msgs.slice(msgs.findLastIndex((m) => m.role === 'assistant') + 1);
  const tr = sinceAssistant.flatMap((m) => (Array.isArray(m.content) ? m.content : [])).find((b) => b.type === 'tool_result');
  const step = SCRIPT[msgs.filter(hasToolUse).length];
  if (step) {
    const on = step.on ?? '<channel';
    // in: "all" also looks at the system prompt and every message: where Claude Code puts a
    // hook's additionalContext (the system prompt in 2.1.3xx, a system-role message in 2.1.197).
    const all = step.in === 'all';
    if (msgs.some((m) => (all || isInput(m)) && textOf(m.content).includes(on)) || (all && textOf(body.system).includes(on)))
      return { kind: 'tool', name: step.name, input: JSON.stringify(step.input ?? {}) };
  }
  if (tr) return { kind: 'text', text: 'done: ' + JSON.stringify(tr.content).slice(0, 80) };
  return { kind: 'text', text: 'ok' };
}

function sse(res, events) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  for (const [ev, data] of events) res.write(`event: ${ev}\ndata: ${JSON.stringify(data)}\n\n`);
  res.end();
}

http
  .createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      let body = {};
      try { body = JSON.parse(raw || '{}'); } catch {}
      appendFileSync(LOG, JSON.stringify({ t: new Date().toISOString(), method: req.method, url: req.url, body }) + '\n');
      const url = req.url.split('?')[0];
      if (req.method === 'POST' && url.endsWith('/v1/messages/count_tokens')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ input_tokens: 10 }));
      }
      if (!(req.method === 'POST' && url.endsWith('/v1/messages'))) {
        res.writeHead(404, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ type: 'error', error: { type: 'not_found_error', message: 'fake' } }));
      }
      const d = decide(body);
      const id = `msg_fake_${++n}`;
      const model = body.model ?? 'claude-fake';
      const usage = { input_tokens: 10, output_tokens: 5 };
      const block =
        d.kind === 'tool'
          ? { type: 'tool_use', id: `toolu_fake_${n}`, name: d.name, input: JSON.parse(d.input) }
          : { type: 'text', text: d.text };
      const stop = d.kind === 'tool' ? 'tool_use' : 'end_turn';
      if (!body.stream) {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ id, type: 'message', role: 'assistant', model, content: [block], stop_reason: stop, stop_sequence: null, usage }));
      }
      const start = d.kind === 'tool' ? { ...block, input: {} } : { type: 'text', text: '' };
      const delta = d.kind === 'tool' ? { type: 'input_json_delta', partial_json: d.input } : { type: 'text_delta', text: d.text };
      sse(res, [
        ['message_start', { type: 'message_start', message: { id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 10, output_tokens: 1 } } }],
        ['content_block_start', { type: 'content_block_start', index: 0, content_block: start }],
        ['content_block_delta', { type: 'content_block_delta', index: 0, delta }],
        ['content_block_stop', { type: 'content_block_stop', index: 0 }],
        ['message_delta', { type: 'message_delta', delta: { stop_reason: stop, stop_sequence: null }, usage: { output_tokens: 5 } }],
        ['message_stop', { type: 'message_stop' }],
      ]);
    });
  })
  .listen(PORT, '127.0.0.1', () => console.error(`fake-anthropic on http://127.0.0.1:${PORT}`));
