#!/usr/bin/env node
// A small fake OpenAI Responses API on loopback, for driving the real Codex CLI offline
// (a custom model provider whose base_url points here, wire_api = "responses"). It plays the
// scripted model of ../fake-model.mjs, whose header lists the script and the environment.
import { decide, hold, script, sendJSON, serve } from '../fake-model.mjs';

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

function decideFor(body) {
  const input = Array.isArray(body.input) ? body.input : [];
  const last = input[input.length - 1];
  return decide({
    offered: toolNames(body.tools),
    called: input.filter((i) => i.type === 'function_call').map((c) => c.name),
    sawChannel: input.some((i) => script.trigger.test(textOf(i))),
    lastOutput: last?.type === 'function_call_output' ? textOf(last) : null,
    matches: (name, want) => name === want || name.endsWith('__' + want) || name.endsWith(want),
  });
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

serve('fake-openai', (method, url, body, res) => {
  if (method === 'GET' && url.endsWith('/models')) return sendJSON(res, 200, { object: 'list', data: [], models: [] });
  if (!(method === 'POST' && url.endsWith('/responses'))) {
    return sendJSON(res, 404, { error: { message: 'fake: no such endpoint', type: 'invalid_request_error' } });
  }
  const id = ++n;
  hold(() => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    for (const ev of events(decideFor(body), id)) res.write(`event: ${ev.type}\ndata: ${JSON.stringify(ev)}\n\n`);
    res.end();
  });
});
